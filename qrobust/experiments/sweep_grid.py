"""What a noise-response sweep is: its configuration (``SweepConfig``), the grid it spans (model x
architecture x corruption x alpha x seed x learning rate: ``replica_table``) and the columns of its results.
The sweep itself, one compiled program per architecture run in chunks, is ``qrobust.experiments.sweep``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from qrobust.corruption import CORRUPTIONS, PAPER_CORRUPTIONS, check_alpha
from qrobust.data.features import ENCODINGS
from qrobust.data.gauge import GAUGES
from qrobust.data.phases import PHASES
from qrobust.errors import ConfigError
from qrobust.experiments import study
from qrobust.experiments.settings import ModelSettings, check_name
from qrobust.experiments.study import StudyConfig
from qrobust.models import registry
from qrobust.models.ansatze import LIBRARY
from qrobust.options import floats, ints, number, option

ANSATZE = tuple(LIBRARY)  # the library's circuits (a user's Ansatz enters through the Python API)

GRID_COLUMNS = ("model", "arch", "corruption", "alpha", "seed", "learning_rate")
SWEEP_METRICS = ("loss", "train_acc", "train_acc_clean", "val_acc", "memorization")
ARCH_COLUMNS = ("n_params", "encoding", "ansatz", "depth", "hidden", "shots", "noise")  # what an arch label stands
# for (shots: inf where read exactly; noise: "none" where exact)
RESULT_COLUMNS = GRID_COLUMNS + ("epoch",) + SWEEP_METRICS + ("diverged", "n_corrupted") + ARCH_COLUMNS
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class SweepConfig(StudyConfig):
    """A noise-response sweep (the shared fields: ``StudyConfig``). ``None`` settings take the paper's
    per-dataset defaults.

    corruptions, alphas, learning_rates: the grid with models and seeds; several learning rates make
      learning rate a grid axis (default: the paper's).
    epochs, batch_size: override the paper's per model.
    depth, hidden: the QNN's depth and the MLP's hidden sizes, overriding the paper's; several (a tuple of
      depths, a tuple of hidden-size tuples) make architecture a grid axis: each architecture is its own
      compiled program (named MODEL_ARCH, e.g. qnn_d4, mlp_h32x8), and the results' ``arch`` column
      ("d4", "h32x8") and ``n_params`` say which.
    ansatz: the QNN's circuit: "hea" (the paper's, the built-in simulators), a name of the ansatz library
      (``qrobust.models.ansatze``: "rxry_cnot", "hea_cz", "reupload"), or a user's ``Ansatz``; several make
      it an axis too.
    encoding: "amplitude" (the paper's), "angle" or "reupload" (``qrobust.data.features``: principal
      components as rotation angles; the MLP gets the same features); several make it an axis (each
      encoding with the ansatzes that fit it: "reupload" with the ones that load data, the others with the
      rest). n_features: principal components for those encodings (default: the dataset's qubits).
    eval_every: record metrics every this many epochs and at the last (default 1: every
      epoch); the evaluation of other epochs is skipped, which saves about a third of
      the QNN's time. The analyses use the last epoch only.
    """

    corruptions: tuple[str, ...] = option(
        PAPER_CORRUPTIONS, flag="--corruption", repeat=True, group="grid", choices=CORRUPTIONS,
        help="repeat; default the paper's two, flip and features. Aimed label flips: class-targeted (class 0 only), "
             "boundary (what a clean reference model is least sure of), quid (states nearest the other class); "
             "random-labels (labels replaced by coin flips: at alpha 1, can the model memorise noise?)")
    alphas: tuple[float, ...] = option(DEFAULT_ALPHAS, group="grid", parse=lambda t: floats(t, "--alphas"),
                                       metavar="A:B:STEP|LIST", help="corruption ratios: START:STOP:STEP or a comma list")
    epochs: int | None = option(None, group="training", parse=number(int, "--epochs"),
                                help="override the paper's epochs")
    batch_size: int | None = option(None, group="training", parse=number(int, "--batch-size"),
                                    help="override the paper's batch size")
    learning_rates: tuple[float, ...] | None = option(None, flag="--lr", repeat=True, group="training",
                                                      parse=number(float, "--lr"),
                                                      help="learning rate; repeat for a learning-rate grid axis")
    depth: int | tuple[int, ...] | None = option(None, repeat=True, group="models", parse=number(int, "--depth"),
                                                 help="QNN depth; repeat for a capacity axis (each depth its own "
                                                      "program)")
    hidden: tuple[int, ...] | tuple[tuple[int, ...], ...] | None = option(
        None, repeat=True, group="models", parse=lambda t: ints(t, "--hidden"),
        help="MLP hidden sizes, e.g. 64,16; repeat for a capacity axis")
    ansatz: object = option("hea", repeat=True, group="models", choices=ANSATZE,
                            help="the QNN's circuit (repeat for an axis; default hea, the paper's): rxry_cnot (the "
                                 "paper's Hessian-study circuit), hea_cz (RY RZ + CZ chain), reupload (data "
                                 "re-uploading, with --encoding reupload); written in TensorCircuit, "
                                 "qrobust/models/ansatze.py")
    encoding: str | tuple[str, ...] = option(
        "amplitude", repeat=True, group="models", choices=ENCODINGS,
        help="how inputs enter (repeat for an axis; default amplitude, the paper's): angle (principal components as "
             "RY angles) or reupload (the same features, loaded by the reupload ansatz in every layer); the MLP gets "
             "the same features")
    n_features: int | None = option(None, flag="--features", group="models", parse=number(int, "--features"),
                                    help="principal components for angle and reupload encodings (default: the "
                                         "data's qubits)")
    eval_every: int = option(1, group="training", parse=number(int, "--eval-every"),
                             help="record metrics every K epochs and at the last (the rest are not evaluated: faster)")

    def __post_init__(self):
        super().__post_init__()
        from qrobust.models.ansatze import Ansatz, register

        several = isinstance(self.ansatz, (tuple, list)) and not isinstance(self.ansatz, Ansatz)
        names = tuple(register(a) for a in (self.ansatz if several else (self.ansatz,)))
        object.__setattr__(self, "ansatz", names[0] if len(names) == 1 else names)
        if isinstance(self.encoding, (tuple, list)):
            object.__setattr__(self, "encoding", self.encoding[0] if len(self.encoding) == 1
                               else tuple(self.encoding))
        if isinstance(self.depth, (tuple, list)) and len(self.depth) == 1:
            object.__setattr__(self, "depth", self.depth[0])
        if self.hidden is not None:
            hidden = tuple(tuple(h) if isinstance(h, (tuple, list)) else h for h in self.hidden)
            if hidden and isinstance(hidden[0], tuple):
                hidden = hidden[0] if len(hidden) == 1 else hidden
            object.__setattr__(self, "hidden", hidden)

    def validate(self) -> "SweepConfig":
        from qrobust import options

        self.validate_common()
        options.check_sizes(self, "epochs", "batch_size", "eval_every", "depth", "n_features")
        options.check_hidden(self.hiddens())
        if self.n_features is not None and any(registry.spec(m).quantum for m in self.models):
            options.check_at_most("--features", self.n_features, options.MAX_QUBITS,
                                  "a QNN's qubits, one per feature: 2**n amplitudes per sample")
        study.check_axis("corruption", self.corruptions)
        for v in self.corruptions:
            check_name("corruption", v, CORRUPTIONS)
        from qrobust.experiments.poisoners import needs_attacks

        if needs_attacks(self.corruptions) and self.attack_options() is None:
            raise ConfigError("the adaptive attacks (gradient, influence, transfer) are computed by the attack "
                              "study, which records their settings: qrobust attack")
        study.check_axis("alpha", self.alphas)
        for a in self.alphas:
            check_alpha(a)
        if self.learning_rates is not None:
            study.check_axis("learning rate", self.learning_rates)
            if min(self.learning_rates) <= 0:
                raise ConfigError(f"learning rates must be positive, got {self.learning_rates}")
            for m in self.models:
                from qrobust.optimizers import get

                optimizer = get(self.settings_for(m).optimizer)
                if len(self.learning_rates) > 1 and not optimizer.uses_learning_rate:
                    raise ConfigError(f"the optimizer {optimizer.name!r} of {m} is a fixed transformation: a "
                                      "learning-rate axis does not apply to it")
        if int(self.eval_every) != self.eval_every or self.eval_every < 1:
            raise ConfigError(f"eval_every must be a positive integer, got {self.eval_every}")
        for m in self.models:
            if not self.architectures(m):
                raise ConfigError(f"no {m} architecture fits: the reupload encoding needs an ansatz that loads the "
                                  "features (--ansatz reupload), the other encodings one that does not")
        for name, values in (("depth", self.depths()), ("hidden sizes", self.hiddens()),
                             ("ansatz", self.ansatze()), ("encoding", self.encodings())):
            if len(values) > 1:
                study.check_axis(name, values)
        for e in self.encodings():
            check_name("encoding", e, ENCODINGS)
        if self.n_features is not None and set(self.encodings()) == {"amplitude"}:
            raise ConfigError("--features applies to the angle and reupload encodings")
        study.check_table_size(sum(len(self.corruptions) * len(self.alphas) * len(self.seeds)
                                   * len(self.learning_rates_for(m)) * len(self.architectures(m))
                                   * (self.settings_for(m).epochs // self.eval_every + 1)
                                   for m in self.models), "these seeds, grid and epochs")
        return self

    def attack_options(self):
        """The adaptive attacks' settings (``qrobust.experiments.attack.AttackConfig``); a plain sweep has none."""
        return None

    def ansatze(self) -> tuple:
        return self.ansatz if isinstance(self.ansatz, tuple) else (self.ansatz,)

    def encodings(self) -> tuple:
        return self.encoding if isinstance(self.encoding, tuple) else (self.encoding,)

    def depths(self) -> tuple:
        return self.depth if isinstance(self.depth, tuple) else (self.depth,)

    def hiddens(self) -> tuple:
        return self.hidden if self.hidden and isinstance(self.hidden[0], tuple) else (self.hidden,)

    def several_architectures(self) -> list[str]:
        """The options given more than one value among those that make architecture axes (--depth, --hidden,
        --ansatz, --encoding) or a learning-rate axis: a study comparing one architecture per model refuses them."""
        return [name for name, values in (("--depth", self.depths()), ("--hidden", self.hiddens()),
                                          ("--ansatz", self.ansatz if isinstance(self.ansatz, tuple) else ()),
                                          ("--encoding", self.encodings()),
                                          ("--lr", self.learning_rates or ())) if len(values) > 1]

    def architectures(self, model: str) -> dict[str, Architecture]:
        """arch label -> each architecture of ``model``: "d6" for a QNN of depth 6, "h64x16" for an MLP with
        hidden sizes 64, 16, "-" for a model with no architecture axis (a user's); prefixed by the encoding and
        ansatz where they are not the paper's or vary ("angle-hea_cz-d4", "angle-h64x16")."""
        from qrobust.models.ansatze import ansatz as library_ansatz

        axis = registry.spec(model).arch_axis
        out = {}
        show_encoding = self.encodings() != ("amplitude",)
        show_ansatz = self.ansatze() != ("hea",)
        encodings = self.encodings()
        if axis != "depth" and {"angle", "reupload"} <= set(encodings):  # the same features: one model for both
            encodings = tuple(e for e in encodings if e != "reupload")
        for encoding in encodings:
            ansatze = ([a for a in self.ansatze() if library_ansatz(a).loads_data == (encoding == "reupload")]
                       if axis == "depth" else [None])
            for a in ansatze:
                shapes = ([(d, None) for d in self.depths()] if axis == "depth" else
                          [(None, h) for h in self.hiddens()] if axis == "hidden" else [(None, None)])
                for (depth, hidden), device in itertools.product(shapes, self.devices(model)):
                    s = self.settings_of(model, epochs=self.epochs, batch_size=self.batch_size, depth=depth,
                                         hidden=hidden, ansatz=a,
                                         learning_rate=self.learning_rates[0] if self.learning_rates else None,
                                         **device)
                    label = (f"d{s.depth}" if axis == "depth" else "h" + "x".join(map(str, s.hidden))
                             if axis == "hidden" else "-")
                    parts = ([encoding] if show_encoding else []) + ([a] if show_ansatz and a else []) + [label]
                    out["-".join(parts + self.device_label(device))] = Architecture(s, encoding)
        return out

    def devices(self, model: str) -> list[dict]:
        """The (shots, noise) settings ``model`` is trained under: every pair of the axes for a quantum model, one
        exact reading for a classical one (read exactly: docs/device.md)."""
        if not registry.spec(model).quantum:
            return [{}]
        return [dict(shots=n, noise=e) for n, e in itertools.product(*self.device_axes())]

    def device_label(self, device: dict) -> list[str]:
        """The arch label's parts for a (shots, noise) pair where the axes are not the exact default: "s1000" or
        "sinf", and the noise label with its colons dropped ("depolarizing0.01"), as program names are file names."""
        shots, noise = self.device_axes()
        parts = []
        if device and shots != (None,):
            parts.append(f"s{'inf' if device['shots'] is None else device['shots']}")
        if device and noise != ("none",):
            parts.append(device["noise"].replace(":", ""))
        return parts

    def programs(self, model: str) -> dict[str, tuple[str, Architecture]]:
        """program name -> (arch, architecture): the model's name alone for one architecture, MODEL_ARCH for
        several (so a run directory of one architecture keeps the names it always had)."""
        archs = self.architectures(model)
        return {(model if len(archs) == 1 else f"{model}_{a}"): (a, arch) for a, arch in archs.items()}

    def settings_for(self, model: str) -> ModelSettings:
        """The settings of ``model``'s (first) architecture."""
        return next(iter(self.architectures(model).values())).settings

    def learning_rates_for(self, model: str) -> tuple[float, ...]:
        return tuple(self.learning_rates) if self.learning_rates else (self.settings_for(model).learning_rate,)

    def resolved(self) -> dict:
        """Every setting that determines the numbers, for config.json (chunk sizes: chunk_sizes.json)."""
        d = self.recorded()
        d["models"] = {m: dict(self.settings_for(m).to_dict(m), learning_rates=list(self.learning_rates_for(m)))
                       for m in self.models}
        for m in self.models:
            if len(self.architectures(m)) > 1:
                d["models"][m]["architectures"] = list(self.architectures(m))
        for k in ("epochs", "batch_size", "learning_rates", "depth", "hidden", "chunk_size"):
            d.pop(k)
        for k, paper in (("ansatz", "hea"), ("encoding", "amplitude"), ("n_features", None)):
            if d[k] == paper:  # the paper's: recorded as before these were options
                d.pop(k)
        return d


@dataclass(frozen=True)
class GaugeConfig(SweepConfig):
    """The gauge study (``qrobust.experiments.gauge``): the sweep of quantum data once under each of ``gauges``
    (``qrobust.data.gauge``); its corruptions default to label flipping alone."""

    dataset: str = option("xxz", group="data", choices=tuple(PHASES),
                          help="the quantum data: ground states of the xxz, tfim or cluster chain")
    corruptions: tuple[str, ...] = option(("flip",), flag="--corruption", repeat=True, group="grid",
                                          choices=CORRUPTIONS, help="repeat; default flip")
    gauge: str | None = None  # each gauge's sweep sets its own: not an option here
    gauges: tuple[str, ...] = option(GAUGES, flag="--gauges", group="grid",
                                     parse=lambda t: tuple(v for v in t.split(",") if v),
                                     help="the gauges, comma-separated (default all: fixed, sign, phase)")

    def validate(self) -> "GaugeConfig":
        if self.dataset not in PHASES:
            raise ConfigError(f"the gauge study needs quantum data (--dataset {'|'.join(PHASES)}): "
                              f"{self.dataset}'s states have no free phase")
        study.check_axis("gauge", self.gauges)
        for g in self.gauges:
            check_name("gauge", g, GAUGES)
        for g in self.gauges:
            self.sweep(g).validate()
        return self

    def sweep(self, gauge: str) -> SweepConfig:
        """The sweep under ``gauge`` (a SweepConfig: each gauge's directory is a sweep's)."""
        from dataclasses import fields

        kept = {f.name: getattr(self, f.name) for f in fields(SweepConfig)}
        return SweepConfig(**dict(kept, gauge=gauge))


class Architecture(NamedTuple):
    """One architecture of a model in a sweep: its settings (depth or hidden sizes, ansatz) and the encoding
    of the data it reads."""

    settings: ModelSettings
    encoding: str


def replica_table(config: SweepConfig, model: str) -> pd.DataFrame:
    """One row per replica of ``model``: its program and grid coordinates."""
    rows = [(program, model, label, *rest) for program, (label, _) in config.programs(model).items()
            for rest in itertools.product(config.corruptions, config.alphas, config.seeds,
                                          config.learning_rates_for(model))]
    return pd.DataFrame(rows, columns=["program", *GRID_COLUMNS])


def architecture_columns(model: str, arch: Architecture, n_params: int) -> dict:
    """The ``ARCH_COLUMNS`` of one architecture (depth 0 and ansatz "-" for a model without a circuit, hidden
    "-" for one without hidden sizes)."""
    s, axis = arch.settings, registry.spec(model).arch_axis
    quantum = registry.spec(model).quantum
    return dict(n_params=n_params, encoding=arch.encoding, ansatz=s.ansatz if axis == "depth" else "-",
                depth=s.depth if axis == "depth" else 0,
                hidden="x".join(map(str, s.hidden)) if axis == "hidden" else "-",
                shots=float("inf") if s.shots is None or not quantum else float(s.shots),
                noise=s.noise if quantum else "none")
