"""What an unlearning study is: its configuration (``UnlearnConfig``, with the paper's teacher and
student settings) and its grid of student replicas (``replica_table``). The study itself, its stages and its
scoring, is ``qrobust.experiments.unlearning``, from which these names are importable too."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace

import pandas as pd

from qrobust.corruption import CORRUPTIONS, check_alpha
from qrobust.errors import ConfigError
from qrobust.experiments import shadows, study
from qrobust.experiments import unlearning_students as student_stages
from qrobust.experiments.settings import ModelSettings, check_name, paper_family
from qrobust.experiments.study import StudyConfig
from qrobust.models import registry
from qrobust.objectives import L1_WEIGHT, UNLEARNING_METHODS, weights_used
from qrobust.options import floats, number, option

FORGET_SOURCES = ("oracle", "qnn_detector")
METHODS = UNLEARNING_METHODS
PAPER_METHODS = ("retrain", "finetune", "scrub", "ga")

# Teachers (the paper's settings): the noise-study QNN; on MNIST a smaller MLP (16, 4).
TEACHER_SETTINGS = {
    "mnist": {"qnn": ModelSettings(epochs=100, batch_size=256, learning_rate=0.005, depth=6),
              "mlp": ModelSettings(epochs=100, batch_size=128, learning_rate=0.01, hidden=(16, 4))},
    "xxz": {"qnn": ModelSettings(epochs=200, batch_size=32, learning_rate=0.03, depth=4),
            "mlp": ModelSettings(epochs=400, batch_size=32, learning_rate=0.01, hidden=(64, 16))},
}
# Students: batch size (None = the whole retain set as one batch) and learning rate.
UNLEARN_SETTINGS = {
    "mnist": {"qnn": (256, 0.005), "mlp": (None, 0.001)},
    "xxz": {"qnn": (None, 0.005), "mlp": (None, 0.01)},
}



@dataclass(frozen=True)
class UnlearnConfig(StudyConfig):
    """An unlearning study (the shared fields: ``StudyConfig``). None settings take the paper's defaults
    (module constants).

    methods, alpha, corruption, kl_ws, fo_ws: the grid with models and seeds; each method gets only the
      weights it uses (the others are recorded as 0, their value in its objective).
    epochs, batch_size, learning_rate: the students'; teacher_epochs overrides the teachers'.
    known_fraction, forget_source: the forget set (module docstring).
    l1_w: l1_sparse's penalty weight; salun_fraction: the fraction of the weights SalUn updates.
    shadows: K shadow replicas per model for the per-example evaluation (``qrobust.experiments.shadows``;
      0 skips it; ``shadows.DEFAULT_SHADOWS`` is the evaluation's usual 64).
    shadow_draws: poisoning draws of the shadows (default 1): the pools of the first D seeds, each with its own
      K shadows, scored per draw and pooled; at most the number of seeds. Left out of config.json at 1.
    """

    methods: tuple[str, ...] = option(PAPER_METHODS, flag="--method", repeat=True, group="grid", choices=METHODS,
                                      help="the unlearning method (repeat; default the paper's four: retrain, "
                                           "finetune, scrub, ga)")
    alpha: float = option(0.3, group="grid", parse=number(float, "--alpha"),
                          help="label-flipping ratio of the teacher")
    corruption: str = option("flip", group="grid", choices=CORRUPTIONS, help="the teacher's corruption")
    epochs: int = option(50, group="training", parse=number(int, "--epochs"), help="unlearning epochs")
    kl_ws: tuple[float, ...] = option((0.0,), flag="--kl-w", group="grid", parse=lambda t: floats(t, "--kl-w"),
                                      help="SCRUB's retain-KL weight(s): value, list or START:STOP:STEP")
    fo_ws: tuple[float, ...] = option((0.2,), flag="--fo-w", group="grid", parse=lambda t: floats(t, "--fo-w"),
                                      help="forget weight(s): value, list or START:STOP:STEP")
    known_fraction: float | tuple[float, ...] = option(
        1.0, group="grid", parse=lambda t: floats(t, "--known-fraction"),
        help="fraction(s) of the poisoned samples the forget set holds: value, list or START:STOP:STEP (several: "
             "the corrective curve, corrective.png)")
    forget_source: str = option("oracle", group="grid", choices=FORGET_SOURCES,
                                help="oracle (the true poisoned samples) or qnn_detector (those the poisoned QNN "
                                     "refuses)")
    batch_size: int | None = option(None, group="training", parse=number(int, "--batch-size"),
                                    help="student batch size (default: the paper's)")
    learning_rate: float | None = option(None, flag="--lr", group="training", parse=number(float, "--lr"),
                                         help="student learning rate (default: the paper's)")
    teacher_epochs: int | None = option(None, group="training", parse=number(int, "--teacher-epochs"),
                                        help="override the teachers' epochs")
    l1_w: float = option(L1_WEIGHT, group="training", parse=number(float, "--l1-w"),
                         help="l1_sparse's penalty weight (Jia et al.'s 5e-4)")
    salun_fraction: float = option(0.5, group="training", parse=number(float, "--salun-fraction"),
                                   help="the fraction of the weights SalUn updates (its saliency mask)")
    shadows: int = option(0, group="grid", parse=number(int, "--shadows"), nargs="?", const=shadows.DEFAULT_SHADOWS, metavar="K",
                          help="shadow replicas per model for the per-example evaluation (U-LiRA, the unlearning "
                               "challenge's epsilon, output KL to retraining; writes scorecard.csv and scorecard.png): "
                               "--shadows alone is 64, 0 (default) skips it")
    shadow_draws: int = option(1, group="grid", parse=number(int, "--shadow-draws"), metavar="D",
                               help="poisoning draws for the shadows: the poisoned pools of the first D seeds, each "
                                    "with its own K shadows (D times the shadows' cost), scored per draw "
                                    "(shadow_draws.csv) and pooled, with intervals over draws and shadows; default 1")

    def __post_init__(self):
        super().__post_init__()
        kf = self.known_fraction
        object.__setattr__(self, "known_fraction", tuple(float(v) for v in (kf if isinstance(kf, (tuple, list))
                                                                            else (kf,))))

    def validate(self) -> "UnlearnConfig":
        from qrobust import options

        self.validate_common()
        options.check_sizes(self, "epochs", "teacher_epochs", "batch_size", "shadows")
        check_name("corruption", self.corruption, CORRUPTIONS)
        study.check_axis("method", self.methods)
        for v in self.methods:
            check_name("method", v, METHODS)
        check_alpha(self.alpha)
        study.check_axis("known fraction", self.known_fraction)
        if not all(0 < v <= 1 for v in self.known_fraction):
            raise ConfigError(f"known fractions must lie in (0, 1], got {self.known_fraction}")
        check_name("forget source", self.forget_source, FORGET_SOURCES)
        if self.forget_source == "qnn_detector":
            if "qnn" not in self.models:
                raise ConfigError("the qnn_detector forget set comes from the poisoned QNN teacher: "
                                  "include --model qnn")
            if self.known_fraction != (1.0,):
                raise ConfigError("--known-fraction applies to the oracle forget set only")
        if self.epochs < 1 or (self.teacher_epochs is not None and self.teacher_epochs < 1):
            raise ConfigError("epochs must be positive")
        for name, ws in (("kl_w", self.kl_ws), ("fo_w", self.fo_ws)):
            study.check_axis(name, ws)
            if min(ws) < 0:
                raise ConfigError(f"{name} values must be finite and >= 0, got {ws}")
        if "neggrad" in self.methods and max(self.fo_ws) >= 1:
            raise ConfigError(f"neggrad weighs retain descent by 1 - fo_w; fo_w = {max(self.fo_ws)} leaves pure "
                              "gradient ascent on the forget set, whose loss is unbounded below: use fo_w < 1")
        if self.corruption != "flip" and ({"ga", "neggrad"} & set(self.methods)):
            raise ConfigError("ga and neggrad ascend the cross-entropy of the poisoned labels; with feature "
                              "randomisation the labels are clean, so use --corruption flip")
        if not (0 <= self.l1_w < float("inf")):
            raise ConfigError(f"the l1 weight must be finite and >= 0, got {self.l1_w}")
        if not 0 < self.salun_fraction <= 1:
            raise ConfigError(f"SalUn's fraction of updated weights must lie in (0, 1], got {self.salun_fraction}")
        if self.shadows != 0 and self.shadows < shadows.MIN_SHADOWS:
            raise ConfigError(f"--shadows {self.shadows}: U-LiRA fits two Gaussians per example from the shadows "
                              f"holding it (half of them), leaving one out: use at least {shadows.MIN_SHADOWS} "
                              "shadows, or 0 to skip them")
        draws = self.shadow_draws
        if draws != shadows.DEFAULT_DRAWS and not (self.shadows and 1 <= draws <= len(self.seeds)):
            raise ConfigError(f"--shadow-draws {draws}: each draw is the poisoned pool of one of the study's seeds, "
                              f"so use 1 to {len(self.seeds)} (the seeds), with --shadows")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.learning_rate is not None and not 0 < self.learning_rate < float("inf"):
            raise ConfigError(f"learning rate must be positive and finite, got {self.learning_rate}")
        # the students' table is counted here, before replica_table makes a row per student
        students = sum(len(self.known_fraction) * len(self.seeds) * (len(self.kl_ws) if weights_used(method)[0] else 1)
                       * (len(self.fo_ws) if weights_used(method)[1] else 1) for method in self.methods)
        study.check_table_size(sum(students * max(self.epochs, self.teacher_settings(m).epochs)
                                   for m in self.models), "these seeds, methods, weights and epochs")
        return self

    def teacher_settings(self, model: str) -> ModelSettings:
        """The paper's teacher settings of the model's family (a control: the QNN's, or the MLP's for the MLP
        variants; ``qrobust.models.controls``), with the model's own training defaults, --teacher-epochs and, for
        the QNN, the study's one shots and noise (teachers and students alike)."""
        spec = registry.spec(model)
        s = replace(TEACHER_SETTINGS[paper_family(self.dataset)][spec.family], **(spec.training or {}))
        changes = {} if self.teacher_epochs is None else {"epochs": self.teacher_epochs}
        if spec.quantum:
            changes.update({k: v for k, v in self.single_device("unlearning").items() if v != getattr(s, k)})
        return replace(s, **changes).validate(model)

    def _students(self, model: str) -> tuple[int | None, float]:
        return UNLEARN_SETTINGS[paper_family(self.dataset)][registry.spec(model).family]

    def student_settings(self, model: str, n_retain: int) -> tuple[int, float]:
        batch, lr = self._students(model)
        batch = self.batch_size or batch or n_retain
        return min(batch, n_retain), self.learning_rate or lr

    def resolved(self) -> dict:
        d = self.recorded()
        if d.get("shadow_draws") == shadows.DEFAULT_DRAWS:  # added later: runs stored before keep their settings
            d.pop("shadow_draws")
        if len(self.known_fraction) == 1:  # recorded as a number, as before it was an axis
            d["known_fraction"] = self.known_fraction[0]
        d["teachers"] = {m: self.teacher_settings(m).to_dict(m) for m in self.models}
        d["students"] = {m: dict(zip(("batch_size", "learning_rate"), self._students(m))) for m in self.models}
        return d


def replica_table(config: UnlearnConfig) -> pd.DataFrame:
    """One row per student replica: model, method, seed, kl_w, fo_w, its program and loss weights."""
    rows = []
    for model, method in itertools.product(config.models, config.methods):
        use_kl, use_fo = weights_used(method)
        for kf, seed, kl_w, fo_w in itertools.product(config.known_fraction, config.seeds,
                                                      config.kl_ws if use_kl else (0.0,),
                                                      config.fo_ws if use_fo else (0.0,)):
            program = student_stages.program_of(model, method)
            rows.append(dict(model=model, method=method, seed=seed, kl_w=kl_w, fo_w=fo_w, known_fraction=kf,
                             program=program))
    return pd.DataFrame(rows)
