"""The loss-landscape study (the paper, arXiv:2508.02422, "Loss landscape").

Models trained on label-flipped data at several alpha, then the Hessian of the
binary cross-entropy at the trained parameters on held-out samples (clean
labels): its exact trace (Hessian-vector products), a Hutchinson estimate with
its standard error, and the top eigenvalues (Lanczos). The roughening ratio is
trace(alpha) / trace(0) for the same model and seed.

Defaults are the paper's Hessian study: the QNN variant with RX and RY layers and
a CNOT ring (d = 5, 10 qubits), the MLP (8, 2), 50 epochs, batch 32, lr 0.01, a
70/30 split of the 500 MNIST training images (per class the first 175 train, the
other 75 are held out), the Hessian on the first 100 held-out samples. All
replicas of a model (alpha x seed) train and are measured in one program.
Inputs, initialisation and batch order from the sweep's builder (the same keys);
Hutchinson probes and the Lanczos start from their own purposes (``qrobust.keys``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from qrobust.analysis.landscape import curvature, hessian_trace, hutchinson_trace, lanczos_eigenvalues
from qrobust.corruption import CORRUPTIONS, check_alpha, check_feasible
from qrobust.errors import ConfigError
from qrobust.experiments import study
from qrobust.experiments.chunks import Progress, run_chunks
from qrobust.experiments.settings import build_model, simulators_used
from qrobust.experiments.study import StudyConfig
from qrobust.keys import HUTCHINSON, LANCZOS, replica_keys
from qrobust.models import batch_logits, count_params, registry
from qrobust.models.ansatze import LIBRARY
from qrobust.options import floats, ints, number, option

ANSATZE = tuple(LIBRARY)


@dataclass(frozen=True)
class LandscapeConfig(StudyConfig):
    """A landscape study (the shared fields: ``StudyConfig``; the QNN and MLP are the paper's Hessian-study
    models, ``ansatz``, ``depth``, ``hidden``, not the sweep's)."""

    alphas: tuple[float, ...] = option((0.0, 0.2, 0.3, 0.4), group="grid", parse=lambda t: floats(t, "--alphas"),
                                       help="label-flipping ratios (must include 0)")
    epochs: int = option(50, group="training", parse=number(int, "--epochs"), help="training epochs")
    batch_size: int = option(32, group="training", parse=number(int, "--batch-size"), help="batch size")
    learning_rate: float = option(0.01, flag="--lr", group="training", parse=number(float, "--lr"),
                                  help="learning rate")
    depth: int = option(5, group="models", parse=number(int, "--depth"), help="the QNN's depth")
    ansatz: str = option("rxry_cnot", group="models", choices=ANSATZE,
                         help="the QNN's circuit (the paper's Hessian study: rxry_cnot)")
    hidden: tuple[int, ...] = option((8, 2), group="models", parse=lambda t: ints(t, "--hidden"),
                                     help="the MLP's hidden sizes")
    train_fraction: float = 0.7
    n_eval: int = option(100, group="grid", parse=number(int, "--n-eval"),
                         help="held-out samples the Hessian is taken on")
    hutchinson_samples: int = option(100, flag="--hutchinson", group="grid", parse=number(int, "--hutchinson"),
                                     help="Rademacher probes")
    lanczos_k: int = 5
    lanczos_iter: int = 30
    exact_max_params: int = 20000
    dense_max_params: int = 4096  # up to this many weights every measure comes from the dense Hessian (one program)

    def validate(self) -> "LandscapeConfig":
        self.validate_common()
        if 0.0 not in self.alphas:
            raise ConfigError("the landscape ratio needs the clean model: include alpha 0 in --alphas")
        study.check_axis("alpha", self.alphas)
        for a in self.alphas:
            check_alpha(a)
        if not 0 < self.train_fraction < 1:
            raise ConfigError(f"train fraction must lie in (0, 1), got {self.train_fraction}")
        for name in ("epochs", "batch_size", "depth", "n_eval", "hutchinson_samples", "lanczos_k", "lanczos_iter"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hutchinson_samples < 2:
            raise ConfigError("Hutchinson needs at least 2 probes for an error bar")
        from qrobust import options

        options.check_sizes(self, "epochs", "batch_size", "depth", "n_eval", "hutchinson_samples")
        options.check_hidden((self.hidden,))
        for m in self.models:  # learning rate, hidden sizes, ansatz: checked now, not after the data are loaded
            self.settings_of(m, epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                             depth=self.depth, ansatz=self.ansatz, hidden=self.hidden)
        study.check_table_size(len(self.models) * len(self.alphas) * len(self.seeds), "these models, alphas and seeds")
        if self.simulator in ("native", "native-gates"):
            raise ConfigError(f"the Hessian takes forward mode through the gradient, which the {self.simulator!r} "
                              "simulator does not have: leave --simulator out (the fastest simulator trains, one "
                              "with forward mode measures) or name blocks or tc-fused")
        return self


def _split(dataset, fraction):
    """Per class, the first ``fraction`` of the training images train, the rest are held out."""
    train, held = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(dataset.y_train == cls)
        k = int(round(fraction * len(idx)))
        train.extend(idx[:k])
        held.extend(idx[k:])
    return np.array(train), np.array(held)


def run_landscape(config: LandscapeConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Train, measure and return one row per model x alpha x seed (see module docstring)."""
    config, dataset = study.start(config)
    tr, held = _split(dataset, config.train_fraction)
    if len(held) < config.n_eval:
        raise ConfigError(f"only {len(held)} held-out samples, fewer than n_eval={config.n_eval}")
    held = held[np.linspace(0, len(held) - 1, config.n_eval).round().astype(int)] if len(held) > config.n_eval \
        else held
    y_tr = dataset.y_train[tr]
    counts = {a: check_feasible("flip", a, y_tr) for a in config.alphas}
    # Hessians take forward mode through the gradient, training needs reverse mode only: without a named
    # simulator each gets the fastest that has what it needs (the same circuit and parameters); a named one
    # runs both, and the registry checks it has forward mode
    settings = {m: config.settings_of(m, epochs=config.epochs, batch_size=config.batch_size,
                                      learning_rate=config.learning_rate, depth=config.depth, ansatz=config.ansatz,
                                      hidden=config.hidden) for m in config.models}
    training_part = replace(dataset, x_train=dataset.x_train[tr], y_train=y_tr)
    bar = Progress(None, progress, name="landscape")
    # only the last epoch's metrics are kept (the table holds the trained models' final accuracies): the other
    # epochs' evaluation is skipped
    programs = {m: study.build_program(config, m, m, settings[m], training_part, out=out, progress=bar.hook,
                                       forward_mode=config.simulator is not None and registry.spec(m).quantum,
                                       eval_every=config.epochs)
                for m in config.models}
    hessian = {m: build_model(m, dataset, settings[m], dtype=config.dtype,
                              simulator=config.simulator or study.resumed_simulator(out, m, "hessian_simulators"),
                                    matmul_precision=config.matmul_precision, forward_mode=True)
               if registry.spec(m).quantum and config.simulator is None else programs[m].built for m in programs}
    run_settings = dict(config.recorded(), hessian_simulators=simulators_used(hessian))
    store = study.open_store(out, run_settings, programs, "landscape", claiming=config.claiming())
    table = pd.DataFrame([dict(model=m, alpha=a, seed=s) for m, a, s in
                          itertools.product(config.models, config.alphas, config.seeds)])
    measures = {m: _measures(hessian[m], dataset, held, config) for m in config.models}
    n_params = {m: count_params(jax.eval_shape(programs[m].built.init, jax.random.PRNGKey(0))) for m in programs}
    # the training program's footprint (the measurements run replica by replica: lax.map)
    chunks = study.plan(config, store, table, programs, column="model", legacy=len(table))
    bar.start(config.epochs * len(table))

    def run(chunk):
        m, rows = chunk.program, chunk.padded
        seeds = rows.seed.to_numpy()
        n_flip = np.array([counts[a] for a in rows.alpha], np.int32)
        params, metrics, _ = programs[m].train(seeds, np.full(len(rows), CORRUPTIONS.index("flip")), n_flip,
                                               data=False)
        keys = replica_keys(seeds)
        held_loss, exact, h_mean, h_se, top = measures[m](params, keys[HUTCHINSON], keys[LANCZOS])
        k = len(chunk.rows)
        frame = chunk.rows.copy()
        frame["n_params"] = n_params[m]
        frame["train_acc"] = np.asarray(metrics["train_acc"])[:k, -1]
        frame["val_acc"] = np.asarray(metrics["val_acc"])[:k, -1]
        frame["held_out_loss"] = np.asarray(held_loss)[:k]
        frame["trace_exact"] = np.asarray(exact, np.float64)[:k]
        frame["trace_hutchinson"] = np.asarray(h_mean)[:k]
        frame["trace_hutchinson_se"] = np.asarray(h_se)[:k]
        for j in range(config.lanczos_k):
            frame[f"eig_{j + 1}"] = np.asarray(top)[:k, j]
        return frame, study.weights(params, k, config.keeps_weights(m))

    frames = run_chunks(chunks, run, store, bar).frames
    bar.close()
    result = pd.concat([frames[c.name] for c in chunks], ignore_index=True)
    trace = result.trace_exact.where(result.trace_exact.notna(), result.trace_hutchinson)
    result["trace"] = trace
    clean = result[result.alpha == 0].set_index(["model", "seed"]).trace
    result["ratio"] = [t / clean.loc[(m, s)] for t, m, s in zip(trace, result.model, result.seed)]
    if store is not None and store.writer:
        store.write_table("landscape.csv", result)
    return result


def _measures(hessian_model, dataset, held, config: LandscapeConfig):
    """A model's compiled measurement, built once for all its chunks: replica-stacked (params, Hutchinson keys,
    Lanczos keys) -> (held-out loss, exact trace (NaN above ``exact_max_params`` weights), Hutchinson mean, its
    standard error, top eigenvalues), of ``hessian_model`` (the trained circuit on a simulator with forward
    mode) on the held-out samples. Up to ``dense_max_params`` weights every measure comes from the dense Hessian
    (``curvature``: one program, one Hessian-vector product in it); above, from Hessian-vector products.
    Replicas are measured one after another (lax.map), products a few at a time: a QNN's products keep every
    intermediate statevector of the held-out samples alive."""
    xe = hessian_model.prepare(dataset.x_train[held])
    ye = jnp.asarray(dataset.y_train[held], jnp.float32)
    n_params = count_params(jax.eval_shape(hessian_model.init, jax.random.PRNGKey(0)))

    def loss_at(p):
        return lambda q: jnp.mean(optax.sigmoid_binary_cross_entropy(batch_logits(hessian_model)(q, xe), ye))

    def dense(p, k_h, k_l):
        trace, mean, se, top = curvature(loss_at(p), p, key_hutchinson=k_h, key_lanczos=k_l,
                                         n_samples=config.hutchinson_samples, k=config.lanczos_k,
                                         n_iter=config.lanczos_iter, batch=8)
        return loss_at(p)(p), trace, mean, se, top

    def by_products(p, k_h, k_l):
        loss = loss_at(p)
        mean, se = hutchinson_trace(loss, p, key=k_h, n_samples=config.hutchinson_samples, batch=8)
        top = lanczos_eigenvalues(loss, p, key=k_l, k=config.lanczos_k, n_iter=config.lanczos_iter)
        exact = (hessian_trace(loss, p, batch=8) if n_params <= config.exact_max_params
                 else jnp.full((), jnp.nan, mean.dtype))
        return loss(p), exact, mean, se, top

    measure_one = dense if n_params <= config.dense_max_params else by_products
    return jax.jit(lambda *a: jax.lax.map(lambda b: measure_one(*b), a))
