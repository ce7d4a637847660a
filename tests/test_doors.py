"""One door per concept: a user's Flax model and optax chain on the replica engine, trained weights as results,
the study registry, and a named simulator honoured or refused."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qrobust as qr
from qrobust.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    """The README's own-model example: the Python block under "Your own model"."""
    text = README.read_text()
    section = text[text.index("## Your own model"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _plain_optax_loop(model, optimizer, seed: int, alpha: float, dataset, epochs: int, batch: int, lr: float):
    """The replica (seed, label flips at alpha) trained by a plain Python loop over optax updates: the same initial
    parameters, flips and batch order as the engine draws from the seed (qrobust.keys, engine.shuffle)."""
    from qrobust.corruption import CORRUPTIONS, check_feasible
    from qrobust.engine import epoch_plan, shuffle
    from qrobust.experiments.inputs import make_chunk_inputs

    count = check_feasible("flip", alpha, dataset.y_train)
    params, keys, data = make_chunk_inputs(model, dataset)(np.array([seed]), np.array([CORRUPTIONS.index("flip")]),
                                                          np.array([count]))
    params, key = jax.tree_util.tree_map(lambda a: a[0], params), keys[0]
    x, y = data.x[0], data.y[0]
    tx = optimizer.make(lr)
    state = tx.init(params)
    n_batches, _ = epoch_plan(len(y), batch)

    def loss(p, idx):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(jax.vmap(model.apply, in_axes=(None, 0))(p, x[idx]),
                                                           y[idx]))

    step = jax.jit(lambda p, s, idx: (lambda g: (lambda u, s2: (optax.apply_updates(p, u), s2))(
        *tx.update(g, s, p)))(jax.grad(loss)(p, idx)))
    for _ in range(epochs):
        key, order, weights = shuffle(key, jnp.ones(len(y), bool), n_batches, batch)
        for idx, w in zip(np.asarray(order), np.asarray(weights)):
            params, state = step(params, state, jnp.asarray(idx[w > 0]))
    return params


@pytest.mark.slow  # about a minute on 2 cores: CI runs it
def test_the_readmes_own_model_example_runs_as_written(tmp_path, monkeypatch):
    """The README's example, executed as written: a Flax module with optax.chain(clip, adamw with a cosine
    schedule) beside the QNN on a grid of replicas. Its replicas equal a plain optax loop's; its stored weights,
    read back by load_results, predict the validation accuracy the run recorded."""
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    run = qr.load_results("runs/own-model")
    trained = run.weights("net")["net"]
    assert len(trained.replicas) == 6 and set(trained.replicas.alpha) == {0.0, 0.3}
    dataset = qr.mnist_embedded(n_train_per_class=60)
    final = run["results"][(run["results"].model == "net") & (run["results"].epoch == 10)]
    logits = run.predict("net", dataset.x_val)
    for i, r in enumerate(trained.replicas.itertuples(index=False)):
        accuracy = float(np.mean((logits[i] > 0) == dataset.y_val))
        recorded = final[(final.seed == r.seed) & (final.alpha == r.alpha)].val_acc.item()
        assert accuracy == pytest.approx(recorded, abs=1e-6), (r.seed, r.alpha)  # float32 of k / 500
        assert r.val_acc == recorded  # a replica's row is its last recorded epoch's (not its first's)
    spec, optimizer = namespace["net"], namespace["opt"]
    model = qr.models.registry.build("net", dataset, qr.experiments.settings.model_settings("mnist", "net"))
    for i in (0, 4):  # a clean and a poisoned replica
        r = trained.replicas.iloc[i]
        plain = _plain_optax_loop(model, optimizer, int(r.seed), float(r.alpha), dataset, 10, 32, 0.01)
        ours = jax.tree_util.tree_map(lambda a: a[i], trained.params)
        for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(ours)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    assert spec.name == "net"


def test_an_nnx_module_and_a_pure_pair_train_on_the_engine(tmp_path):
    """Flax nnx (built from its rngs) and a pure (init, apply) pair enter through the same door as linen; their
    weights come back from load_results and predict."""
    from flax import nnx

    class Lin(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(32, 1, rngs=rngs)

        def __call__(self, x):
            return self.dense(x)[..., 0]

    def init(key, x):
        return {"w": 0.1 * jax.random.normal(key, x.shape), "b": jnp.zeros(())}

    def apply(p, x):
        return jnp.dot(p["w"], x) + p["b"]

    specs = (qr.flax_model(lambda rngs: Lin(rngs), name="nnx_lin"), qr.model_from(init, apply, name="pair_lin"))
    config = qr.SweepConfig(dataset="xxz", n_qubits=4, gauge="fixed", models=specs, corruptions=("flip",),
                            alphas=(0.0,), seeds=2, epochs=3, batch_size=16)
    qr.run_sweep(config, tmp_path / "run", progress=False)
    run = qr.load_results(tmp_path / "run")
    assert run.study == "sweep" and json.loads((tmp_path / "run" / "config.json").read_text())["study"] == "sweep"
    x = np.eye(16, dtype=complex)[:5]  # five basis states (XXZ states are complex: the models read 2 x 16 features)
    for name in ("nnx_lin", "pair_lin"):
        logits = run.predict(name, x)
        assert logits.shape == (2, 5) and np.isfinite(logits).all()
    p = run.weights("pair_lin")["pair_lin"].params
    np.testing.assert_allclose(run.predict("pair_lin", x), np.asarray(p["w"])[:, :16] @ x.real.T
                               + np.asarray(p["b"])[:, None], atol=1e-6)


def test_weights_can_be_left_out_and_the_reader_says_so(tmp_path):
    config = qr.SweepConfig(dataset="xxz", n_qubits=4, gauge="fixed", models=("mlp",), corruptions=("flip",),
                            alphas=(0.0,), seeds=1, epochs=1, keep_weights=False)
    qr.run_sweep(config, tmp_path / "run", progress=False)
    with pytest.raises(qr.ConfigError, match="no stored weights of program 'mlp'"):
        qr.load_results(tmp_path / "run").weights("mlp")
    with pytest.raises(qr.ConfigError, match="keep_weights names 'qnn'"):
        qr.SweepConfig(models=("mlp",), keep_weights=("qnn",)).validate()


def test_an_explicit_simulator_runs_or_is_refused_never_replaced(tmp_path, capsys):
    """--ansatz hea_cz --simulator blocks: blocks runs the paper's HEA only, so the run is refused before any
    work; a simulator that can run it is recorded in config.json."""
    base = ["sweep", "--dataset", "xxz", "--qubits", "6", "--model", "qnn", "--ansatz", "hea_cz", "--corruption", "flip",
            "--alphas", "0", "--seeds", "1", "--epochs", "1", "--n-train", "4", "--no-progress"]
    assert main(base + ["--simulator", "blocks", "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "simulator 'blocks' cannot run this QNN" in err and "'hea_cz'" in err
    assert not (tmp_path / "refused").exists()
    assert main(base + ["--simulator", "xla-gates", "--out", str(tmp_path / "run")]) == 0
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert settings["simulators"] == {"qnn": "xla-gates"}


def test_typed_keys_train_the_same_replicas_as_raw_ones():
    from qrobust.engine import EvalData, make_train_fn, plain_data

    model = qr.mlp(4, (3,))
    keys = jax.random.split(jax.random.key(7), 2)
    raw = jax.random.key_data(keys)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 4)), jnp.float32)
    y = jnp.asarray([[0, 1, 0, 1, 1, 0]] * 2, jnp.float32)
    data = plain_data(x, y, y, jnp.zeros((2, 6), bool))
    train = make_train_fn(model, epochs=2, batch_size=4, n_samples=6)
    params = jax.vmap(model.init)(keys)
    a, _ = train(params, jnp.array([0.1, 0.1]), keys, data, EvalData(x[0], y[0]))
    b, _ = train(params, jnp.array([0.1, 0.1]), raw, data, EvalData(x[0], y[0]))
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


# --- a new study is its own module plus one registry entry (here both in this file) ---------------------------

from dataclasses import dataclass  # noqa: E402

import pandas as pd  # noqa: E402

from qrobust.experiments import registry, study  # noqa: E402
from qrobust.experiments.chunks import run_chunks  # noqa: E402
from qrobust.options import number, option  # noqa: E402


@dataclass(frozen=True)
class CleanConfig(study.StudyConfig):
    """A toy study: each model's clean validation accuracy per seed."""

    epochs: int = option(2, group="training", parse=number(int, "--epochs"), help="training epochs")

    def validate(self):
        self.validate_common()
        return self


def run_clean(config: CleanConfig, out=None, *, progress: bool = True) -> pd.DataFrame:
    config, dataset = study.start(config)
    programs = {m: study.build_program(config, m, m, config.settings_of(m, epochs=config.epochs), dataset)
                for m in config.models}
    store = study.open_store(out, config.recorded(), programs, "clean")
    table = pd.DataFrame([dict(program=m, seed=s) for m in config.models for s in config.seeds])

    def run(chunk):
        p, k = programs[chunk.program], len(chunk.rows)
        params, metrics, _ = p.train(chunk.padded.seed.to_numpy(), np.zeros(len(chunk.padded)),
                                     np.zeros(len(chunk.padded)))
        frame = chunk.rows.assign(val_acc=np.asarray(metrics["val_acc"])[:k, -1])
        return frame, study.weights(params, k)

    done = run_chunks(study.plan(config, store, table, programs), run, store)
    result = pd.concat(done.frames.values(), ignore_index=True)
    if store is not None:
        store.write_table("clean.csv", result)
    return result


def test_a_new_study_is_its_module_and_one_registry_entry(tmp_path, capsys):
    registry.register(registry.Study("clean", "clean", "clean accuracy per model and seed", CleanConfig, run_clean,
                                     ("clean.csv",)))
    out = tmp_path / "clean"
    assert main(["clean", "--dataset", "xxz", "--qubits", "4", "--gauge", "fixed", "--model", "mlp", "--seeds", "2",
                 "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    run = qr.load_results(out)
    assert run.study == "clean" and len(run["clean"]) == 2 and run.weights("mlp")["mlp"].replicas.seed.tolist() == [0, 1]
