"""Layer 5: unlearning the poisoned samples, every method and weight as replicas.

Protocol (the paper, arXiv:2508.02422, "Unlearning"): label flipping at ratio alpha; per model and
seed a *teacher* is trained on the poisoned data (the paper's teacher settings)
and a *clean* model at alpha = 0 (same settings, same seed) gives the
validation accuracy to recover. The forget set is the flipped samples (or a
random fraction of them, ``known_fraction``: corrective unlearning with partial
knowledge); the retain set is the rest, labels as trained. Each method trains a
student for ``epochs`` epochs from the teacher (retrain: from a fresh
initialisation) with its objective (``qrobust.objectives``), recording every
epoch validation accuracy, forget-set accuracy against the clean and the
poisoned labels, retain accuracy and the objective. Metrics on the forget set
are always scored on the full poisoned set. With ``forget_source="qnn_detector"`` nobody says where the poison
is: the forget set of a seed is the training samples whose (poisoned) label that
seed's poisoned QNN teacher refuses to predict (detect, then unlearn); the
tables record its size, precision and recall against the true poisoned set.

All methods of the unlearning family (retrain, finetune, scrub, ga, neggrad,
relabel) share ONE compiled program per model: the method is a per-replica
vector of loss weights and a starting point. SCRUB as Kurmanji et al. define it
(alternating max/min steps) is its own program.

Keys (``qrobust.keys``): the teachers' inputs, initialisation and batch order
come from the sweep's own builder, so a teacher is the sweep's poisoned replica
when settings agree; students draw their batch order, retrain's fresh
initialisation, the random labels and the known part of the forget set from
their own purposes.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qrobust.analysis.forgetting import GRID, score_students, scorecard  # noqa: F401 (GRID re-exported)
from qrobust.corruption import CORRUPTIONS, check_alpha, check_feasible
from qrobust.errors import ConfigError
from qrobust.experiments import poisoners, shadows, study
from qrobust.experiments import unlearning_stages as stages
from qrobust.experiments import unlearning_students as student_stages
from qrobust.experiments.chunks import Progress
from qrobust.experiments.settings import ModelSettings, check_name, paper_family
from qrobust.experiments.study import StudyConfig
from qrobust.objectives import L1_WEIGHT, UNLEARNING_METHODS, method_coefs, weights_used  # noqa: F401

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
    """

    methods: tuple[str, ...] = PAPER_METHODS
    alpha: float = 0.3
    corruption: str = "flip"
    epochs: int = 50
    kl_ws: tuple[float, ...] = (0.0,)
    fo_ws: tuple[float, ...] = (0.2,)
    known_fraction: float | tuple[float, ...] = 1.0
    forget_source: str = "oracle"
    batch_size: int | None = None
    learning_rate: float | None = None
    teacher_epochs: int | None = None
    l1_w: float = L1_WEIGHT
    salun_fraction: float = 0.5
    shadows: int = 0

    def __post_init__(self):
        super().__post_init__()
        kf = self.known_fraction
        object.__setattr__(self, "known_fraction", tuple(float(v) for v in (kf if isinstance(kf, (tuple, list))
                                                                            else (kf,))))

    def validate(self) -> "UnlearnConfig":
        self.validate_common()
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
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.learning_rate is not None and not 0 < self.learning_rate < float("inf"):
            raise ConfigError(f"learning rate must be positive and finite, got {self.learning_rate}")
        return self

    def teacher_settings(self, model: str) -> ModelSettings:
        s = TEACHER_SETTINGS[paper_family(self.dataset)][model]
        return s if self.teacher_epochs is None else ModelSettings(**{**asdict(s), "epochs": self.teacher_epochs})

    def student_settings(self, model: str, n_retain: int) -> tuple[int, float]:
        batch, lr = UNLEARN_SETTINGS[paper_family(self.dataset)][model]
        batch = self.batch_size or batch or n_retain
        return min(batch, n_retain), self.learning_rate or lr

    def resolved(self) -> dict:
        d = asdict(self)
        if len(self.known_fraction) == 1:  # recorded as a number, as before it was an axis
            d["known_fraction"] = self.known_fraction[0]
        d["teachers"] = {m: self.teacher_settings(m).to_dict(m) for m in self.models}
        d["students"] = {m: dict(zip(("batch_size", "learning_rate"), UNLEARN_SETTINGS[paper_family(self.dataset)][m]))
                         for m in self.models}
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


class Unlearned(NamedTuple):
    """What an unlearning study gives: per-epoch ``results``, the per-student ``final`` table, and with shadows
    (``UnlearnConfig.shadows``) the ``scorecard`` (per model x method x weights) and the per-example scores
    (``examples``); both None without shadows."""

    results: pd.DataFrame
    final: pd.DataFrame
    scorecard: pd.DataFrame | None = None
    examples: pd.DataFrame | None = None


def run_unlearning(config: UnlearnConfig, out: str | Path | None = None, *, progress: bool = True):
    """Run (or resume) an unlearning study. Returns (per-epoch results, per-replica final table); with shadows
    the scorecard is written to ``out`` (``evaluate_unlearning`` returns it)."""
    return evaluate_unlearning(config, out, progress=progress)[:2]


def evaluate_unlearning(config: UnlearnConfig, out: str | Path | None = None, *, progress: bool = True) -> Unlearned:
    """Run (or resume) an unlearning study, with its shadow replicas if ``config.shadows`` (``Unlearned``).

    Stages (``qrobust.experiments.unlearning_stages``, ``unlearning_students``): teachers, forget sets, student
    inputs, students; then the scoring (``qrobust.analysis.forgetting.score_students``); then the shadows
    (``qrobust.experiments.shadows``). Everything is validated, and the data loaded, before anything is
    written.
    """
    config = config.validate()
    students = replica_table(config)
    epochs = {m: max(config.epochs, config.teacher_settings(m).epochs) for m in config.models}
    study.check_table_size(int(sum(epochs[m] for m in students.model)), "these seeds, methods, weights and epochs")
    dataset = study.load(config)
    n = len(dataset.y_train)
    n_poisoned = check_feasible(config.corruption, config.alpha, dataset.y_train)
    n_known = {kf: int(round(kf * n_poisoned)) for kf in config.known_fraction}
    for kf, size in n_known.items():
        if size == 0:
            raise ConfigError(f"the forget set is empty: {config.corruption} at alpha={config.alpha} corrupts "
                              f"{n_poisoned} of {n} samples, and a known fraction of {kf} of them leaves none "
                              "to forget")
    if "mlp" in config.models and {"scrub", "ga"} & set(config.methods) and max(config.fo_ws) > 0:
        warnings.warn("the MLP's logits are unbounded, so the ascent terms of scrub/ga (fo_w > 0) are "
                      "unbounded below; replicas that diverge are marked and left out of averages",
                      RuntimeWarning, stacklevel=2)
    run_settings = dict(config.resolved(), n_poisoned=n_poisoned,
                        n_forget=(list(n_known.values()) if len(n_known) > 1 else n_known[config.known_fraction[0]])
                        if config.forget_source == "oracle" else None)
    prepared = study.prepare(config, {m: config.teacher_settings(m) for m in config.models}, run_settings, out,
                             dataset=dataset)
    ctx = stages.Context(config, prepared, n_poisoned, n_known, bar=Progress(None, progress))
    chunks = stages.teacher_chunks(ctx)
    references = {m: poisoners.plan_references(config, m, ctx.teacher_trainers[m], ctx.inputs[m], prepared.val[m],
                                               config.seeds, prepared.store)
                  for m in config.models if config.corruption == "boundary"}
    todo = [c for c in chunks + sum(references.values(), [])
            if prepared.store is None or not prepared.store.has_chunk(c.name)]
    # the students' chunks are planned once the teachers (and so the forget sets) exist; until then the bar
    # counts all of them
    ctx.bar.start(sum(config.teacher_settings(c.program).epochs * len(c.rows) for c in todo)
                  + sum(student_stages.student_recipe(config, q, 1)[2] for q in students.program)
                  + shadows.work(config))
    for m, planned in references.items():  # "boundary": the clean reference models first
        ctx.priorities[m] = poisoners.Priorities(dataset, poisoners.run_references(
            planned, prepared.models[m], ctx.teacher_trainers[m], ctx.inputs[m], prepared.val[m], dataset,
            config.teacher_settings(m).learning_rate, prepared.store, ctx.bar))
    teachers = stages.train_teachers(ctx, chunks)
    forget = stages.forget_sets(ctx)
    results, params, seconds = student_stages.train_students(ctx, students, student_stages.StudentInputs(ctx))
    shadow_scores, examples = shadows.Shadows(ctx).run() if config.shadows else (None, None)
    ctx.bar.close()
    last = results.groupby(list(GRID), sort=False).epoch.transform("max")  # retrain_full runs the teacher's epochs
    final = results[results.epoch == last].drop(columns="epoch").reset_index(drop=True)
    results, final = score_students(results, final, teachers, params, seconds, forget)
    if final.diverged.any():
        warnings.warn(f"{int(final.diverged.sum())} student replica(s) diverged and are left out of averages",
                      RuntimeWarning, stacklevel=2)
    card = None if shadow_scores is None else scorecard(final, shadow_scores)
    store = prepared.store
    if store is not None and store.writer:
        from qrobust.analysis.summary import recovery_summary

        store.write_table("results.csv", results)
        store.write_table("final.csv", final)
        store.write_table("teachers.csv", teachers)
        store.write_table("recovery.csv", recovery_summary(final))
        if card is not None:
            store.write_table("shadows.csv", shadow_scores)
            store.write_table("examples.csv", examples)
            store.write_table("scorecard.csv", card)
    return Unlearned(results, final, card, examples)
