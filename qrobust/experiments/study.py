"""The study skeleton: what every study (sweep, unlearning, detection, landscape, and those to come) shares.

A study is its own grid (a replica table), its own compiled programs and its own
result table. Everything else is here, written once:

- ``StudyConfig``: the fields every study has (dataset and its options, models, seeds, optimiser, dtype,
  chunk size, simulator), validated in one place; a study's config extends it with its own grid.
- ``Program``: one compiled training program of a study (a model of the registry, its settings, the data as
  it reads them, its trainer, the inputs of a chunk of its replicas); ``plan`` sizes and plans the chunks of
  a study's programs, ``Program.train`` trains a chunk of replicas.
- ``load``, ``open_store``: the data, and the run directory (config.json records the simulator each program
  runs on), opened after every check and before any training.
- a chunk's training inputs (so every study's replica of a seed is the sweep's replica of that seed) and their
  shapes: ``qrobust.experiments.inputs``.

Which studies exist, and how a surface runs one, is ``qrobust.experiments.registry``; planning, running,
resuming and concatenating chunks is ``qrobust.experiments.chunks``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qrobust import options, replicas, sharding
from qrobust.backend import COMPLEX_DTYPES, check_dtype
from qrobust.data import Dataset
from qrobust.data.gauge import DEFAULT_GAUGE, GAUGES, check_gauge
from qrobust.data.mnist import check_digits
from qrobust.data.phases import GRIDS, PHASES, Grid, resolve_grid, with_overrides
from qrobust.engine import EvalData, Trainer, make_train_fn
from qrobust.errors import ConfigError
from qrobust.experiments.chunks import fitted_chunk_size, plan_chunks
from qrobust.experiments.inputs import make_chunk_inputs, training_args
from qrobust.experiments.settings import (DATASETS, ModelSettings, build_model, check_data_options, check_name,
                                         check_simulator, load_dataset, model_settings, simulators_used)
from qrobust.memory import default_cap, program_bytes
from qrobust.models import Model, registry
from qrobust.models.base import flatten, unflatten
from qrobust.models.noise import parse as parse_noise, parse_axis as noise_axis
from qrobust.models.shots import SHOT_GRADIENTS, check_shots, parse_axis as shots_axis
from qrobust.models.simulators import SIMULATORS
from qrobust.options import option
from qrobust.store import RunDirectory


def phase_grid(name: str | None, extras: dict):
    """The grid option's value from --grid and its overrides (--param-range, --n-points, --window,
    --val-placement)."""
    given = {k: v for k, v in extras.items() if v is not None}
    if not given:
        return name
    return with_overrides(name, value_range=given.get("--param-range"), n_points=given.get("--n-points"),
                          window=given.get("--window"), placement=given.get("--val-placement"))


def _two_digits(text: str) -> tuple[int, int]:
    digits = options.ints(text, "--digits")
    if len(digits) != 2:
        raise ConfigError(f"--digits takes two digits A,B, got {text!r}")
    return digits


def _weights_kept(text: str) -> bool | tuple[str, ...]:
    return True if text == "all" else False if text == "none" else tuple(v for v in text.split(",") if v)


@dataclass(frozen=True)
class StudyConfig:
    """The settings every study shares. ``None`` takes the paper's (or the machine's) default.

    dataset: one of ``settings.DATASETS``: "mnist", the quantum phases "xxz", "tfim", "cluster"
      (``qrobust.data.phases``), "sklearn-digits", "npz" (a user's arrays, ``qrobust.data.npz``). Its options:
      n_train_per_class; n_qubits (a chain's spins), grid (a phase's coupling grid: a name of
      ``phases.GRIDS``, a ``phases.Grid``; None: "paper"); digits (mnist, sklearn-digits); mnist_path (full
      MNIST instead of the embedded digits); data_file (npz).
    models: names of the model registry ("qnn", "mlp", ...) or a user's ``ModelSpec`` (``qrobust.models.flax_model``,
      ``model_from``), registered for this process under its name. seeds: distinct non-negative integers, or a
      count n (the seeds 0 .. n-1).
    optimizer: the optimiser of every model (a name of ``qrobust.optimizers`` or an ``Optimizer``; None: each
      model's own, the paper's Adam for the built-in ones).
    keep_weights: store each replica's trained weights with its chunk (``qrobust.load_results`` returns them):
      True (every model), False, or the names of the models whose weights are kept (their cost on disk:
      docs/weights.md).
    claim, claim_lease: share the run directory's chunks with other processes through lock files
      (``qrobust.leases``, docs/array_jobs.md), taking over a chunk whose holder is silent for ``claim_lease`` s.
      How the work is shared, not what it computes: not recorded in config.json.
    dtype: the QNN's "complex64" (default) or "complex128" (needs JAX's 64-bit mode).
    chunk_size: replicas per compiled program (default: what fits in memory).
    simulator: the QNN's simulator (``qrobust.models.qnn``; None: "native" on CPU where it
      builds, else "blocks"); matmul_precision: "highest" or "tf32" (the "blocks" products).
    gauge, gauge_seed: the global phase of each state of quantum data (``qrobust.data.gauge``: "fixed",
      "sign" or "phase"; None: "phase" for a quantum phase, recorded by name; classical data has none).
    """

    dataset: str = option("mnist", group="data", choices=DATASETS,
                          help="the data: MNIST digits (embedded); ground states of the xxz, tfim (transverse-field "
                               "Ising) or cluster (cluster-Ising, SPT) chain; scikit-learn's 8x8 digits; a user's npz "
                               "file")
    models: tuple[str, ...] = option(registry.BUILT_IN, flag="--model", repeat=True, group="models",
                                     choices=registry.BUILT_IN + registry.CONTROLS,
                                     help="qnn and/or mlp (repeat; default both), or a classical control of the QNN "
                                          "(docs/controls.md)")
    seeds: tuple[int, ...] | int = option((0, 1, 2, 3, 4), group="grid", parse=options.seeds, metavar="N|LIST|A:B",
                                          help="a count of seeds (from --seed-offset), a list 3,7,9 or a range 10:14")
    n_train_per_class: int | None = option(None, flag="--n-train", group="data", parse=options.number(int, "--n-train"),
                                           help="training samples per class (default: the dataset's)")
    n_qubits: int | None = option(None, flag="--qubits", group="data", parse=options.number(int, "--qubits"),
                                  help="spins of a chain (xxz, tfim, cluster; default 12)")
    mnist_path: str | None = option(None, group="data", help="full MNIST: mnist.npz or a directory of IDX files")
    dtype: str = option("complex64", group="models", choices=COMPLEX_DTYPES,
                        help="the QNN's state dtype (complex128 turns on JAX's 64-bit mode)")
    chunk_size: int | None = option(None, group="run", parse=options.number(int, "--chunk-size"),
                                    help="replicas per compiled program (default: what fits in memory)")
    simulator: str | None = option(None, group="models", parse=options.auto, choices=("auto",) + SIMULATORS,
                                   metavar="{auto," + ",".join(SIMULATORS) + "}",
                                   help="the QNN's simulator: auto (default) is the first of the registry that can "
                                        "run the circuit here (the C++ kernel on CPU where it builds, else blocks for "
                                        "hea, xla-gates or tc-gates for other circuits); a named one that cannot run "
                                        "it is refused; config.json records the one that ran")
    matmul_precision: str = option("highest", group="models", choices=("highest", "tf32"),
                                   help="precision of the 'blocks' simulator's products: tf32 is TensorFloat-32 on a "
                                        "GPU (faster, about 1e-3 relative error per product; the same as highest on "
                                        "CPU)")
    gauge: str | None = option(None, group="data", choices=GAUGES,
                               help="the global phase of each state of quantum data: phase (a random e^{i phi} per "
                                    "state, as an eigensolver gives them; the default), sign (a random +-1), fixed "
                                    "(canonical: the largest amplitude real positive); the QNN cannot see it, the "
                                    "MLP can")
    gauge_seed: int = option(0, group="data", parse=options.number(int, "--gauge-seed"),
                             help="the seed of the gauge's draw (recorded)")
    grid: Grid | str | dict | None = option(
        None, group="data", choices=tuple(GRIDS), combine=phase_grid,
        help="a chain's coupling grid: paper (the published code's: 83 states per class on [0.09, 1.91], "
             "|g - 1| <= 0.045 left out; the default) or wide (201 points on [0, 2], |g - 1| <= 0.2 left out)",
        extra=(("--param-range", "LO,HI: the grid's range of the coupling (Delta, h), replacing the grid's",
                lambda t: options.floats(t, "--param-range")),
               ("--n-points", "points on the grid's range, replacing the grid's", options.number(int, "--n-points")),
               ("--window", "couplings with |g - 1| <= WINDOW are left out, replacing the grid's",
                options.number(float, "--window")),
               ("--val-placement", "first|second: within each class, sorted by the coupling, validation takes the "
                "first (both ends of an odd-sized class: the paper grid) or the second state of each pair (wide)",
                str)))
    digits: tuple[int, int] | None = option(None, group="data", parse=_two_digits,
                                            help="two digits A,B: A is class 0, B class 1 (mnist, sklearn-digits; "
                                                 "default 1,9)")
    data_file: str | None = option(None, group="data",
                                   help="--dataset npz: an .npz file with x_train, y_train, x_val, y_val (labels "
                                        "0/1; rows amplitude-encoded, zero-padded to a power of two)")
    optimizer: str | None = None
    shots: tuple[int | None, ...] = option(
        (None,), group="models", parse=shots_axis, metavar="N,...|inf",
        help="the QNN read as a device reads it: each output from N shots, trained on parameter-shift gradients at N "
             "shots per term; a comma list is a grid axis (100,1000,inf; inf or none: exact, the default). The "
             "classical models are read exactly (docs/device.md)")
    noise: tuple[str, ...] = option(
        ("none",), group="models", parse=noise_axis, metavar="CHANNEL:P,...",
        help="gate noise of the QNN, and readout error: depolarizing, dephasing, amplitude_damping (after every "
             "gate on its qubits, or CH@layer:P once per layer on every qubit), depolarizing2 (on the pair of every "
             "two-qubit gate), readout, e.g. depolarizing:0.001,0.01 (a grid axis), CH:P+CH:P for several at once; "
             "none: exact (the default). Gate noise runs on the heisenberg simulator, readout error alone on the "
             "exact ones (docs/device.md)")
    shot_gradient: str = option(
        "shift", group="models", choices=SHOT_GRADIENTS,
        help="with --shots, the QNN's gradient: shift (each parameter-shift term sampled from N shots, as a device "
             "does: 2 circuits per parameter per step; the default) or gaussian (the exact gradient plus Gaussian "
             "noise of the per-term variance bound: one gradient's cost)")
    keep_weights: bool | tuple[str, ...] = option(
        True, group="run", parse=_weights_kept, metavar="all|none|MODEL,...",
        help="store each replica's trained weights with its chunk (qrobust.load_results reads them): all (default), "
             "none, or the models named")
    claim: bool = option(False, group="run", switch=True,
                         help="share --out with any number of other processes started with --claim (array jobs, "
                              "preemptible machines; no coordinator): each claims an unfinished chunk with a lock file, "
                              "trains and stores it, and goes on; a killed process's chunk is taken over "
                              "(docs/array_jobs.md)")
    claim_lease: float = option(300.0, group="run", parse=options.number(float, "--claim-lease"), metavar="SECONDS",
                                help="with --claim: a chunk whose holder sent no heartbeat (every quarter of this) for "
                                     "this long is taken over by another process (one of the same machine that died: "
                                     "at once)")

    def __post_init__(self):
        from qrobust import optimizers

        models = self.models if isinstance(self.models, (tuple, list)) else (self.models,)
        object.__setattr__(self, "models", tuple(registry.register(m) for m in models))
        if isinstance(self.seeds, (int, np.integer)) and not isinstance(self.seeds, bool):
            if self.seeds < 1:
                raise ConfigError(f"a count of seeds must be at least 1, got {self.seeds}")
            options.check_at_most("--seeds", int(self.seeds), options.MAX_SEEDS, "a run keeps a result row per "
                                  "replica and recorded epoch in memory: split the seeds over runs")
            object.__setattr__(self, "seeds", tuple(range(int(self.seeds))))
        elif isinstance(self.seeds, (tuple, list, range)):
            object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.optimizer is not None:
            object.__setattr__(self, "optimizer", optimizers.register(self.optimizer))
        if isinstance(self.keep_weights, (list, tuple)):
            object.__setattr__(self, "keep_weights", tuple(self.keep_weights))
        if self.dataset in PHASES:  # quantum data: record the default gauge by name, and the grid's numbers
            if self.gauge is None:
                object.__setattr__(self, "gauge", DEFAULT_GAUGE)
            object.__setattr__(self, "grid", resolve_grid(self.grid))
        if self.digits is not None:
            object.__setattr__(self, "digits", tuple(self.digits))
        one = (str, int, type(None))
        object.__setattr__(self, "shots", (self.shots,) if isinstance(self.shots, one) else tuple(self.shots))
        noise = (self.noise,) if isinstance(self.noise, one) or hasattr(self.noise, "channels") else self.noise
        object.__setattr__(self, "noise", tuple(parse_noise(v).label for v in noise))

    def validate_common(self) -> None:
        """Check the shared fields (a study's ``validate`` calls this, then checks its own grid)."""
        check_name("dataset", self.dataset, DATASETS)
        check_axis("model", self.models)
        for m in self.models:
            registry.spec(m)
        if (not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0
                or any(int(v) != v for v in self.seeds)):
            raise ConfigError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if max(self.seeds) >= 2**32:  # a replica's keys come from PRNGKey(uint32(seed)): larger seeds would wrap
            raise ConfigError(f"seeds must lie below 2**32 (a seed is a 32-bit key), got {max(self.seeds)}")
        self.claiming()
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"chunk size must be positive, got {self.chunk_size}")
        options.check_at_most("--seeds", len(self.seeds), options.MAX_SEEDS, "a run keeps a result row per replica "
                              "and recorded epoch in memory: split the seeds over runs with --seed-offset")
        options.check_at_most("--chunk-size", self.chunk_size, options.MAX_CHUNK_SIZE, "replicas per compiled program")
        options.check_at_most("--n-train", self.n_train_per_class, options.MAX_TRAIN_PER_CLASS,
                              "training samples per class")
        check_data_options(self.dataset, mnist_path=self.mnist_path, n_train_per_class=self.n_train_per_class,
                           n_qubits=self.n_qubits, gauge=self.gauge, digits=self.digits, data_file=self.data_file,
                           grid=self.grid)
        if self.dataset in PHASES:
            PHASES[self.dataset].check_spins(12 if self.n_qubits is None else self.n_qubits)
            self.grid.check(PHASES[self.dataset].critical, n_spins=12 if self.n_qubits is None else self.n_qubits)
        if self.digits is not None:
            check_digits(self.digits)
        check_dtype(self.dtype)
        check_simulator(self.simulator, self.matmul_precision)
        if self.gauge is not None:
            check_gauge(self.gauge, self.gauge_seed)
        check_axis("shots", self.shots)
        for n in self.shots:
            check_shots(n)
        check_axis("noise", self.noise)
        check_name("shot gradient", self.shot_gradient, SHOT_GRADIENTS)
        if not any(registry.spec(m).quantum for m in self.models) and (self.device_axes() != ((None,), ("none",))):
            raise ConfigError("--shots and --noise apply to the QNN (a classical model is read exactly), and no "
                              "model of this study is one")
        if not isinstance(self.keep_weights, bool):
            unknown = [m for m in self.keep_weights if m not in self.models]
            if unknown:
                raise ConfigError(f"keep_weights names {', '.join(map(repr, unknown))}, not a model of this study "
                                  f"({', '.join(self.models)}); give True, False or some of its models")

    def claiming(self):
        """How this run shares its directory's chunks with other processes (``leases.Claiming``; None: it does not)."""
        from qrobust.leases import Claiming

        lease = Claiming(self.claim_lease).check()
        return lease if self.claim else None

    def device_axes(self) -> tuple[tuple, tuple]:
        """(shots values, noise labels): the device settings the QNN is trained under (each pair its own program)."""
        return tuple(self.shots), tuple(self.noise)

    def single_device(self, study: str) -> dict:
        """The QNN's one (shots, noise) of a study that has no device axis: refuse several, by name."""
        if len(self.shots) > 1 or len(self.noise) > 1:
            raise ConfigError(f"the {study} study takes one --shots and one --noise value (the sweep takes a grid of "
                              "them)")
        return dict(shots=self.shots[0], noise=self.noise[0])

    def keeps_weights(self, model: str) -> bool:
        """Whether the trained weights of ``model``'s replicas are stored with their chunks (``keep_weights``)."""
        return self.keep_weights is True or (isinstance(self.keep_weights, tuple) and model in self.keep_weights)

    def settings_of(self, model: str, **overrides) -> ModelSettings:
        """``model``'s paper settings for this dataset, with ``overrides`` and the study's optimiser applied; a
        quantum model takes the study's one shots and noise (a study with device axes, the sweep, gives each
        program's in ``overrides``)."""
        if registry.spec(model).quantum and "shots" not in overrides:
            overrides = dict(overrides, **self.single_device(type(self).__name__.removesuffix("Config").lower()))
        return model_settings(self.dataset, model, optimizer=self.optimizer, **overrides)

    def recorded(self) -> dict:
        """The config's fields for config.json; a field at its default that was added after runs were stored
        (the optimiser) is left out, so those runs' directories keep their settings."""
        d = asdict(self)
        d.pop("keep_weights")  # what is stored, not what is computed
        d.pop("claim"), d.pop("claim_lease")  # how the work is shared, not what it computes
        for f in fields(self):
            if f.name in ADDED_LATER and d[f.name] == f.default and not (f.name == "shot_gradient"
                                                                        and self.shots != (None,)):
                d.pop(f.name)  # (the shot gradient is recorded wherever shots are finite)
        return d


ADDED_LATER = ("optimizer", "shots", "noise", "shot_gradient")


def check_axis(name: str, values) -> None:
    """A grid axis: at least one value, none twice (a replica listed twice would be counted twice in every
    mean), every number finite."""
    values = list(values)
    if not values:
        raise ConfigError(f"choose at least one {name}")
    if len(values) > options.MAX_VALUES:
        raise ConfigError(f"{len(values):,} values of {name} are more than {options.MAX_VALUES:,}, the most a grid "
                          "axis takes: split the grid over runs")
    seen = set()
    for i, v in enumerate(values):
        if isinstance(v, (int, float)) and not math.isfinite(v):
            raise ConfigError(f"{name} must be finite, got {v}")
        try:  # a set: linear in the axis's length (the values are numbers, names, tuples)
            twice = v in seen
            seen.add(v)
        except TypeError:  # an unhashable value (a user's object)
            twice = v in values[:i]
        if twice:
            raise ConfigError(f"{name} {v!r} is given twice: give each value of a grid once")


TABLE_ROW_BYTES = 400  # a tidy row in memory, generously (about 15 columns, pandas' overhead)


def check_table_size(n_rows: int, what: str) -> None:
    """Refuse, before any work, a study whose result table (``n_rows`` rows: replicas x recorded epochs)
    would not fit in half the free memory: it would otherwise grow until the process is killed."""
    from qrobust.memory import available_bytes

    need, free = n_rows * TABLE_ROW_BYTES, available_bytes()
    if need > free // 2:
        raise ConfigError(f"{what} make {n_rows:,} result rows, about {need / 2**30:.1f} GiB, more than half "
                          f"of the {free / 2**30:.1f} GiB free: ask for fewer")


def start(config: StudyConfig) -> tuple[StudyConfig, Dataset]:
    """What every study does first: validate ``config`` (before anything is written), turn on the persistent
    compilation cache (``qrobust.compilation_cache.use_compilation_cache``: a repeated study compiles nothing),
    and load the data. Returns (the validated config, the dataset)."""
    from qrobust.compilation_cache import use_compilation_cache

    config = config.validate()
    use_compilation_cache()
    return config, load(config)


def load(config: StudyConfig) -> Dataset:
    """The study's dataset with its options."""
    return load_dataset(config.dataset, mnist_path=config.mnist_path, n_train_per_class=config.n_train_per_class,
                        n_qubits=config.n_qubits, gauge=config.gauge, gauge_seed=config.gauge_seed,
                        digits=config.digits, data_file=config.data_file, grid=config.grid)


class Program:
    """One compiled training program of a study: a model of the registry (``model``) built for the data as it
    reads them (``data``), trained with ``settings`` (epochs, batch size, learning rate, optimiser) by one
    ``Trainer`` per stream length (``trainer``), on chunks of replicas whose inputs ``inputs`` makes (default:
    ``make_chunk_inputs``, the sweep's replica of each seed). ``args_for(r)``: the abstract arguments of r
    replicas (default ``training_args``), from which ``plan`` reads the program's footprint. Trainer keywords
    (objective, eval_every, record_margins, epochs, batch_size) go to ``make_train_fn``; ``n_stream``: the longest
    stream its chunks train on (default every training sample)."""

    def __init__(self, name: str, model: str, built: Model, settings: ModelSettings, data: Dataset, *,
                 progress=None, inputs: Callable | None = None, args_for: Callable | None = None,
                 n_stream: int | None = None, **trainer):
        self.name, self.model, self.built, self.settings, self.data = name, model, built, settings, data
        self.val = EvalData(built.prepare(data.x_val), jnp.asarray(data.y_val, jnp.float32))
        self.inputs = make_chunk_inputs(built, data) if inputs is None else inputs
        self.args_for = training_args(self.inputs, self.val) if args_for is None else args_for
        self.epochs = trainer.pop("epochs", settings.epochs)
        self.batch_size = trainer.pop("batch_size", settings.batch_size)
        self.n_stream = len(data.y_train) if n_stream is None else n_stream
        self.progress, self._options, self._trainers = progress, trainer, {}
        self._custom_inputs = inputs is not None
        self._data_digest: str | None = None
        self.store: RunDirectory | None = None  # where the replicas' reuse is recorded (set by ``plan``)

    @property
    def quantum(self) -> bool:
        return registry.spec(self.model).quantum

    @property
    def n(self) -> int:
        return len(self.data.y_train)

    def trainer(self, n_stream: int | None = None) -> Trainer:
        """The program's trainer for streams of at most ``n_stream`` samples (default the program's), built once."""
        from qrobust.optimizers import get

        n_stream = self.n_stream if n_stream is None else n_stream
        if n_stream not in self._trainers:
            self._trainers[n_stream] = make_train_fn(
                self.built, epochs=self.epochs, batch_size=self.batch_size, n_samples=n_stream,
                optimizer=get(self.settings.optimizer), progress=self.progress, **self._options)
        return self._trainers[n_stream]

    def description(self) -> dict:
        """How this program's model is built, for programs.json (``qrobust.load_results`` rebuilds it from this
        to use its stored weights): the registry model, its settings, the inputs' shape and the numerics."""
        x = np.asarray(self.data.x_train[:1])
        s = self.built.settings
        settings = {k: v for k, v in asdict(self.settings).items()  # exact: left out, as before they were settings
                    if (k, v) not in (("shots", None), ("noise", "none"))}
        return dict(model=self.model, settings=json.loads(json.dumps(settings)),
                    inputs=dict(n_qubits=int(self.data.n_qubits), width=int(x.shape[1]), complex=bool(np.iscomplexobj(x)),
                                encoding=self.data.meta.get("encoding", "amplitude")),
                    numerics=dict(dtype=s.get("dtype", "complex64"), simulator=s.get("simulator"),
                                  matmul_precision=s.get("matmul_precision", "highest"),
                                  **({"shot_gradient": s["shot_gradient"]} if "shot_gradient" in s else {})))

    def footprint(self) -> Callable[[int], int]:
        """``footprint(r)``: bytes of the program a chunk of r replicas runs (``program_footprint``)."""
        return program_footprint(self.trainer(), self.args_for)

    def train(self, seeds, kinds, counts, scores=None, learning_rates=None, *, stream=None, data: bool = True):
        """Train the replicas of ``seeds`` with corruption ``kinds`` of ``counts`` samples (``make_chunk_inputs``);
        ``learning_rates`` (default the settings'); ``stream`` (R, N) bool: the samples each replica trains on
        (default all). Returns (final params, metrics, the training data); with ``data`` False the training data
        of a chunk read back from the store is not built (None: its builder is not compiled)."""
        seeds, kinds, counts = np.asarray(seeds), np.asarray(kinds, np.int32), np.asarray(counts, np.int32)
        n_stream = None if stream is None else int(np.asarray(stream).sum(1).max())
        rates = np.full(len(seeds), self.settings.learning_rate) if learning_rates is None else learning_rates
        digests = self._replica_keys(n_stream, seeds, kinds, counts, scores, rates, stream)
        recorded = self.trainer(n_stream).recipe.recorded
        stored = replicas.read(digests, recorded) if digests is not None else None
        inputs = None
        if stored is None or data:
            params, keys, inputs = self.inputs(seeds, kinds, counts, scores)
            if stream is not None:
                inputs = inputs._replace(stream=jnp.asarray(stream))
        if stored is not None:  # every replica of the chunk was trained before: read back, bit for bit
            params = unflatten(jax.eval_shape(self.built.init, jax.random.PRNGKey(0)), stored[0])
            metrics = stored[1]
            if self.progress is not None:
                self.progress(self.epochs)
        else:
            params, metrics = self.trainer(n_stream)(params, jnp.asarray(rates, jnp.float32), keys, inputs, self.val)
            if digests is not None:
                replicas.write(digests, flatten(params), metrics, recorded)
        if self.store is not None:
            streams = [None] * len(seeds) if stream is None else [r.tobytes() for r in np.asarray(stream, bool)]
            n = len(set(zip(np.asarray(seeds).tolist(), np.asarray(kinds).tolist(), np.asarray(counts).tolist(),
                            np.asarray(rates, float).tolist(), streams)))  # the chunk's replicas, not its padding
            self.store.record_replicas(self.name, n if stored is not None else 0, 0 if stored is not None else n,
                                       self._why_not(), self.epochs)
        return params, metrics, inputs

    def _why_not(self) -> str | None:
        return replicas.why_not(self.model, self.settings.optimizer, self._options, self._custom_inputs)

    def _replica_keys(self, n_stream, seeds, kinds, counts, scores, rates, stream) -> list[str] | None:
        """Each replica's digest for the store of trained replicas (``qrobust.replicas``); None where this program
        cannot reuse (``_why_not``)."""
        base = self.reuse_base(n_stream, len(seeds))
        return None if base is None else replicas.replica_keys(base, seeds, kinds, counts, scores, rates, stream)

    def plan_key(self) -> str | None:
        """The digest of what this program's replicas share (``reuse_base``), with the epochs its trainer records
        (the reproduction's plan trains a program's replicas once for every part whose program has this key, so
        its entries hold every epoch those parts read); None where it cannot reuse, or vmaps its replicas (there
        a replica's bits depend on its chunk)."""
        base = self.reuse_base()
        if base is None or base["mode"] == "vmap":
            return None
        text = json.dumps(dict(base, recorded=list(self.trainer().recipe.recorded)), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def reuse_base(self, n_stream: int | None = None, chunk: int | None = None) -> dict | None:
        """What every replica digest of this program shares (its model, data, trainer; ``chunk``, the chunk's
        replicas, only where the trainer vmaps them); None where this program cannot reuse. Two programs with
        equal bases train the same replica to the same bits (``qrobust.experiments.replica_plan``)."""
        if self._why_not() is not None:
            return None
        recipe = self.trainer(n_stream).recipe
        if self._data_digest is None:
            d = self.data
            self._data_digest = replicas.data_digest(d.x_train, d.y_train, d.x_val, d.y_val)
        return dict(program=self.description(), data=self._data_digest, epochs=recipe.epochs,
                    batch_size=recipe.batch_size, n_batches=recipe.n_batches,
                    record_margins=bool(recipe.record_margins), mode=recipe.mode, objective=recipe.objective.name,
                    devices=sharding.device_count(), chunk=chunk if recipe.mode == "vmap" else None)


def build_program(config: StudyConfig, name: str, model: str, settings: ModelSettings, data: Dataset, *,
                  out=None, forward_mode: bool = False, **program) -> Program:
    """A ``Program`` of registry model ``model`` built with the study's numerics (dtype, simulator, precision).
    Resuming the run in ``out``, a program without a named simulator runs on the one the run recorded
    (``resumed_simulator``), whatever the default would be now."""
    simulator = config.simulator or resumed_simulator(out, name)
    built = build_model(model, data, settings, dtype=config.dtype, simulator=simulator,
                        matmul_precision=config.matmul_precision, forward_mode=forward_mode,
                        shot_gradient=config.shot_gradient)
    return Program(name, model, built, settings, data, **program)


def resumed_simulator(out, program: str, key: str = "simulators") -> str | None:
    """The simulator program ``program`` ran on in the run directory ``out`` (config.json's ``key``), or None where
    there is no such run (a new one: the registry's choice). So a run started while the native kernel could not
    build resumes on "blocks" once it can; one whose recorded simulator cannot run here is refused with the
    reason (``qnn``)."""
    if out is None:
        return None
    try:
        recorded = json.loads((Path(out) / "config.json").read_text())["settings"].get(key, {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no run yet (or a damaged one, which the store refuses when it opens the directory)
    simulator = recorded.get(program) if isinstance(recorded, dict) else None
    return simulator if isinstance(simulator, str) and simulator != "-" else None


def plan(config: StudyConfig, store: RunDirectory | None, table, programs: dict[str, Program], *,
         column: str = "program", prefix: str = "", sizes_key: str | None = None, legacy: int | None = None) -> list:
    """The chunks of ``table``'s replicas, a chunk size per program of ``column`` (``chunks.fitted_chunk_size``:
    asked, recorded when the run started, else what fits of the program's footprint). Chunk files are named
    ``prefix + program``; chunk_sizes.json keys ``sizes_key + program`` (default the prefix)."""
    key = prefix if sizes_key is None else sizes_key
    if store is not None:
        store.record_programs({prefix + name: programs[name].description() for name in dict.fromkeys(table[column])})
        for name in dict.fromkeys(table[column]):
            programs[name].store = store

    def size(program: str, n_rows: int) -> int:
        p = programs[program]
        return fitted_chunk_size(key + program, footprint=p.footprint(), n_replicas=n_rows,
                                 cap=default_cap(p.quantum), store=store, asked=config.chunk_size, legacy=legacy,
                                 probe=not replicas.planned(p.plan_key()))

    return plan_chunks(table, column, size, prefix=prefix, store=store)


def open_store(out: str | Path | None, settings: dict, programs: dict, study: str, *,
               claiming=None) -> RunDirectory | None:
    """The run directory of study ``study`` (its registry name) for ``settings`` plus the simulator each program
    runs on (None without ``out``); ``programs``: name -> Program (or Model); ``claiming``: shared chunk by chunk
    with other processes (``StudyConfig.claiming``)."""
    if out is None:
        if claiming is not None:
            raise ConfigError("claim shares a run directory's chunks with other processes: give the run a directory "
                              "(out)")
        return None
    from qrobust.provenance import numerics

    models = {name: getattr(p, "built", p) for name, p in programs.items()}
    return RunDirectory(out, dict(settings, simulators=simulators_used(models)), study=study,
                        numerics=numerics(), claiming=claiming).open()


def program_footprint(train: Callable, args_for: Callable[[int], tuple]) -> Callable[[int], int]:
    """``footprint(r)``: bytes of ``train``, the very function the chunks will call, compiled for the arguments
    ``args_for(r)`` of r replicas (abstract ``jax.ShapeDtypeStruct``s or arrays; XLA's memory analysis,
    ``qrobust.memory.program_bytes``). Compiled, not run; the compilation is JAX's, so a chunk of that shape
    reuses it."""
    return lambda r: program_bytes(train, *args_for(r))


def weights(params, n_real: int, keep: bool = True) -> dict:
    """A chunk's stored arrays of its trained weights: {"params": (n_real, P) float32 flat vectors} of the first
    ``n_real`` replicas of the replica-stacked ``params`` (``qrobust.models.base.flatten``), or {} where the
    study does not keep them."""
    from qrobust.models.base import flatten

    return {"params": flatten(params)[:n_real]} if keep else {}
