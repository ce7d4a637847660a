"""The study skeleton: what every study (sweep, unlearning, detection, landscape, and those to come) shares.

A study is its own grid (a replica table), its own compiled programs and its own
result table. Everything else is here, written once:

- ``StudyConfig``: the fields every study has (dataset and its options, models,
  seeds, dtype, chunk size, simulator), validated in one place; a study's config
  extends it with its own grid.
- ``prepare``: load the data, build the models and their validation inputs, and
  open the run directory (config.json records the simulator each model runs on),
  all before any training and after every check.
- ``chunk_size``: replicas per chunk of a program, from the one mechanism
  (``chunks.fitted_chunk_size``: asked, else recorded in chunk_sizes.json by the
  run that started the directory, else what fits in memory).
- ``make_chunk_inputs``, ``program_footprint``: a chunk's training inputs (so
  every study's replica of a seed is the sweep's replica of that seed) and the
  footprint of the program a chunk runs, read from its compilation.

Planning, running, resuming and concatenating chunks is ``qrobust.experiments.chunks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qrobust.backend import check_dtype
from qrobust.corruption import corrupt_replicas
from qrobust.data import Dataset
from qrobust.data.gauge import DEFAULT_GAUGE, check_gauge
from qrobust.data.mnist import check_digits
from qrobust.data.phases import PHASES, Grid, resolve_grid
from qrobust.engine import EvalData, plain_data
from qrobust.errors import ConfigError
from qrobust.experiments.chunks import fitted_chunk_size
from qrobust.experiments.settings import (DATASETS, ModelSettings, build_model, check_data_options, check_name,
                                         check_simulator, load_dataset, simulators_used)
from qrobust.keys import CORRUPT, INIT, SHUFFLE, replica_keys
from qrobust.memory import default_cap, program_bytes
from qrobust.models import MODELS, Model
from qrobust.store import RunDirectory


@dataclass(frozen=True)
class StudyConfig:
    """The settings every study shares. ``None`` takes the paper's (or the machine's) default.

    dataset: one of ``settings.DATASETS``: "mnist", the quantum phases "xxz", "tfim", "cluster"
      (``qrobust.data.phases``), "sklearn-digits", "npz" (a user's arrays, ``qrobust.data.npz``). Its options:
      n_train_per_class; n_qubits (a chain's spins), grid (a phase's coupling grid: a name of
      ``phases.GRIDS``, a ``phases.Grid``; None: "paper"); digits (mnist, sklearn-digits); mnist_path (full
      MNIST instead of the embedded digits); data_file (npz).
    models: "qnn" and/or "mlp". seeds: distinct non-negative integers.
    dtype: the QNN's "complex64" (default) or "complex128" (needs JAX's 64-bit mode).
    chunk_size: replicas per compiled program (default: what fits in memory).
    simulator: the QNN's simulator (``qrobust.models.qnn``; None: "native" on CPU where it
      builds, else "blocks"); matmul_precision: "highest" or "tf32" (the "blocks" products).
    gauge, gauge_seed: the global phase of each state of quantum data (``qrobust.data.gauge``: "fixed",
      "sign" or "phase"; None: "phase" for a quantum phase, recorded by name; classical data has none).
    """

    dataset: str = "mnist"
    models: tuple[str, ...] = MODELS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_train_per_class: int | None = None
    n_qubits: int | None = None
    mnist_path: str | None = None
    dtype: str = "complex64"
    chunk_size: int | None = None
    simulator: str | None = None
    matmul_precision: str = "highest"
    gauge: str | None = None
    gauge_seed: int = 0
    grid: Grid | str | dict | None = None
    digits: tuple[int, int] | None = None
    data_file: str | None = None

    def __post_init__(self):
        if self.dataset in PHASES:  # quantum data: record the default gauge by name, and the grid's numbers
            if self.gauge is None:
                object.__setattr__(self, "gauge", DEFAULT_GAUGE)
            object.__setattr__(self, "grid", resolve_grid(self.grid))
        if self.digits is not None:
            object.__setattr__(self, "digits", tuple(self.digits))

    def validate_common(self) -> None:
        """Check the shared fields (a study's ``validate`` calls this, then checks its own grid)."""
        check_name("dataset", self.dataset, DATASETS)
        check_axis("model", self.models)
        for m in self.models:
            check_name("model", m, MODELS)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"chunk size must be positive, got {self.chunk_size}")
        check_data_options(self.dataset, mnist_path=self.mnist_path, n_train_per_class=self.n_train_per_class,
                           n_qubits=self.n_qubits, gauge=self.gauge, digits=self.digits, data_file=self.data_file,
                           grid=self.grid)
        if self.dataset in PHASES:
            PHASES[self.dataset].check_spins(12 if self.n_qubits is None else self.n_qubits)
            self.grid.check(PHASES[self.dataset].critical)
        if self.digits is not None:
            check_digits(self.digits)
        check_dtype(self.dtype)
        check_simulator(self.simulator, self.matmul_precision)
        if self.gauge is not None:
            check_gauge(self.gauge, self.gauge_seed)


def check_axis(name: str, values) -> None:
    """A grid axis: at least one value, none twice (a replica listed twice would be counted twice in every
    mean), every number finite."""
    values = list(values)
    if not values:
        raise ConfigError(f"choose at least one {name}")
    for i, v in enumerate(values):
        if isinstance(v, (int, float)) and not math.isfinite(v):
            raise ConfigError(f"{name} must be finite, got {v}")
        if v in values[:i]:
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


class Prepared(NamedTuple):
    """A study's data, models (name -> Model), validation inputs (name -> EvalData) and run directory."""

    dataset: Dataset
    models: dict
    val: dict
    store: RunDirectory | None


def load(config: StudyConfig) -> Dataset:
    """The study's dataset with its options."""
    return load_dataset(config.dataset, mnist_path=config.mnist_path, n_train_per_class=config.n_train_per_class,
                        n_qubits=config.n_qubits, gauge=config.gauge, gauge_seed=config.gauge_seed,
                        digits=config.digits, data_file=config.data_file, grid=config.grid)


def build_models(config: StudyConfig, dataset: Dataset, settings: dict[str, ModelSettings]) -> dict[str, Model]:
    """name -> Model for each entry of ``settings`` (a name "mlp_cv" or "qnn" builds that family)."""
    return {name: build_model(name.split("_")[0], dataset, s, dtype=config.dtype, simulator=config.simulator,
                              matmul_precision=config.matmul_precision) for name, s in settings.items()}


def eval_inputs(models: dict[str, Model], dataset: Dataset) -> dict[str, EvalData]:
    """name -> the shared validation set as the model reads it."""
    y = jnp.asarray(dataset.y_val, jnp.float32)
    return {name: EvalData(model.prepare(dataset.x_val), y) for name, model in models.items()}


def open_store(out: str | Path | None, settings: dict, models: dict[str, Model]) -> RunDirectory | None:
    """The run directory for ``settings`` plus the simulator each model runs on (None without ``out``)."""
    if out is None:
        return None
    return RunDirectory(out, dict(settings, simulators=simulators_used(models))).open()


def prepare(config: StudyConfig, settings: dict[str, ModelSettings], run_settings: dict, out,
            dataset: Dataset | None = None, models: dict | None = None) -> Prepared:
    """Data, models, validation inputs and the opened run directory, in that order (so every refusal
    comes before anything is written). ``dataset`` or ``models`` given are used as they are."""
    dataset = load(config) if dataset is None else dataset
    models = build_models(config, dataset, settings) if models is None else models
    val = eval_inputs(models, dataset)
    return Prepared(dataset, models, val, open_store(out, run_settings, models))


def chunk_size(config: StudyConfig, store: RunDirectory | None, program: str, model_kind: str,
               footprint: Callable[[int], int], n_replicas: int, legacy: int | None = None) -> int:
    """Replicas per chunk of ``program`` (one mechanism for every study: ``chunks.fitted_chunk_size``);
    ``footprint(r)``: bytes of the program for r replicas (``program_footprint``)."""
    return fitted_chunk_size(program, footprint=footprint, n_replicas=n_replicas, cap=default_cap(model_kind),
                             store=store, asked=config.chunk_size, legacy=legacy)


def make_chunk_inputs(model: Model, dataset: Dataset):
    """A function (seeds (R,), corruption index (R,), count (R,), scores (R, N) or None) -> (initial params,
    shuffle keys, TrainData), jitted once per model, so that no chunk compiles anything new. Keys from the seed
    alone (``qrobust.keys``): a seed's replica is the same in every study. ``scores``: the aimed poisoners'
    priorities per replica (``qrobust.experiments.poisoners``; None: zeros, all the others need)."""
    x = jnp.asarray(dataset.x_train)  # float32 / complex64 (or 64-bit in x64 mode)
    y = jnp.asarray(dataset.y_train, jnp.int32)

    @jax.jit
    def build(seeds, kinds, counts, scores, x, y):
        keys = replica_keys(seeds)
        c = corrupt_replicas(kinds, keys[CORRUPT], x, y, counts, scores)
        y_clean = jnp.broadcast_to(y, c.y.shape).astype(jnp.float32)
        data = plain_data(model.prepare(c.x), c.y.astype(jnp.float32), y_clean, c.mask)
        return jax.vmap(model.init)(keys[INIT]), keys[SHUFFLE], data

    def inputs(seeds, kinds, counts, scores=None):
        if scores is None:
            scores = jnp.zeros((jnp.shape(seeds)[0], y.shape[0]), jnp.float32)
        return build(jnp.asarray(seeds), jnp.asarray(kinds), jnp.asarray(counts), jnp.asarray(scores, jnp.float32),
                     x, y)

    return inputs


def program_footprint(train: Callable, args_for: Callable[[int], tuple]) -> Callable[[int], int]:
    """``footprint(r)``: bytes of ``train``, the very function the chunks will call, compiled for the arguments
    ``args_for(r)`` of r replicas (abstract ``jax.ShapeDtypeStruct``s or arrays; XLA's memory analysis,
    ``qrobust.memory.program_bytes``). Compiled, not run; the compilation is JAX's, so a chunk of that shape
    reuses it."""
    return lambda r: program_bytes(train, *args_for(r))


def training_args(inputs: Callable, val: EvalData) -> Callable[[int], tuple]:
    """``args_for(r)``: the abstract arguments of a training program for r replicas whose inputs come from
    ``inputs`` (``make_chunk_inputs``): (params, learning rates, shuffle keys, data, val)."""
    def args_for(r: int) -> tuple:
        ints = jax.ShapeDtypeStruct((r,), jnp.int32)
        params, keys, data = jax.eval_shape(inputs, ints, ints, ints)
        return params, jax.ShapeDtypeStruct((r,), jnp.float32), keys, data, val

    return args_for
