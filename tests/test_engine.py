"""The training engine against independent references."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from qrobust.analysis import final_summary
from qrobust.engine import EvalData, bce_loss, epoch_plan, evaluate, make_train_fn, plain_data
from qrobust.experiments.sweep import _to_frame
from qrobust.models import Model, mlp


def _linear_model(dim):
    return Model(name="linear", init=lambda key: 0.1 * jax.random.normal(key, (dim,)),
                 apply=lambda w, x: jnp.dot(w, x), prepare=jnp.asarray, input_shape=(dim,), settings={})


def test_bce_hand_computed():
    got = bce_loss(jnp.array([0.0, np.log(3.0), 5.0]), jnp.array([1.0, 0.0, 1.0]), jnp.array([1.0, 1.0, 0.0]))
    assert abs(float(got) - (np.log(2) + np.log(4)) / 2) < 1e-6


def test_epoch_plan_keeps_the_partial_batch():
    assert epoch_plan(500, 256) == (2, 512)
    assert epoch_plan(80, 32) == (3, 96)
    assert epoch_plan(64, 32) == (2, 64)


def _toy(n=7, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def test_engine_equals_a_plain_optax_loop_with_unpadded_batches(x64):
    n, dim, batch, epochs, lr = 7, 3, 3, 4, 0.05
    x, y = (a.astype(np.float64) for a in _toy(n, dim))
    model = _linear_model(dim)
    w0 = model.init(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(5)
    data = plain_data(jnp.asarray(x)[None], jnp.asarray(y)[None], jnp.asarray(y)[None], jnp.zeros((1, n), bool))
    train = make_train_fn(model, epochs=epochs, batch_size=batch, n_samples=n)
    w_engine, metrics = train(w0[None], jnp.array([lr]), key[None], data, EvalData(jnp.asarray(x), jnp.asarray(y)))

    # reference: the same shuffles, explicit batches of 3, 3 and 1 (no padding), optax.adam
    tx = optax.adam(lr)
    w, state, k = w0, tx.init(w0), key
    for _ in range(epochs):
        k, sub = jax.random.split(k)
        order = np.argsort(np.asarray(jax.random.uniform(sub, (n,))))  # the engine's documented shuffle
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            g = jax.grad(lambda w: jnp.mean(optax.sigmoid_binary_cross_entropy(jnp.asarray(x[idx]) @ w, y[idx])))(w)
            upd, state = tx.update(g, state, w)
            w = optax.apply_updates(w, upd)
    np.testing.assert_allclose(np.asarray(w_engine[0]), np.asarray(w), atol=1e-7)  # lr is held as float32
    final_loss = np.mean(np.asarray(optax.sigmoid_binary_cross_entropy(jnp.asarray(x) @ w, y)))
    assert abs(float(metrics["loss"][0, -1]) - final_loss) < 1e-7
    assert metrics["val_acc"].shape == (1, epochs)


def test_replicas_are_independent_and_match_single_runs():
    n, dim = 12, 3
    x, y = _toy(n, dim, seed=2)
    model = mlp(dim, (5,))
    R = 3
    keys = jax.random.split(jax.random.PRNGKey(0), R)
    params = jax.vmap(model.init)(keys)
    lrs = jnp.array([0.01, 0.05, 0.1])
    ys = jnp.stack([jnp.asarray(y), 1 - jnp.asarray(y), jnp.asarray(y)])
    data = plain_data(jnp.broadcast_to(jnp.asarray(x), (R, n, dim)), ys, ys, jnp.zeros((R, n), bool))
    val = EvalData(jnp.asarray(x), jnp.asarray(y))
    loss = chex.assert_max_traces(bce_loss, n=2)  # one trace for R = 3, one for R = 1
    train = make_train_fn(model, epochs=3, batch_size=5, n_samples=n, loss_fn=loss)
    p_all, m_all = train(params, lrs, keys, data, val)
    p_all2, _ = train(params, lrs * 0.5, keys, data, val)  # same shapes: no new trace
    for r in range(R):
        one = jax.tree_util.tree_map(lambda a: a[r:r + 1], (params, lrs, keys, data))
        p_one, m_one = train(*one, val)
        for a, b in zip(jax.tree_util.tree_leaves(p_one), jax.tree_util.tree_leaves(p_all)):
            np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[r]), atol=1e-6)
        np.testing.assert_allclose(np.asarray(m_one["loss"][0]), np.asarray(m_all["loss"][r]), atol=1e-6)


def test_metrics_hand_computed():
    # logit = first feature, so the prediction is known: samples 0..5 predict 1, 0, 1, 0, 1, 1
    x = jnp.array([[1.0], [-1.0], [2.0], [-3.0], [0.5], [4.0]])
    y_clean = jnp.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    corrupted = jnp.array([False, False, True, True, False, True])
    y_trained = jnp.where(corrupted, 1 - y_clean, y_clean)  # flipped: 1, 0, 1, 1, 1, 1
    model = Model("id", None, lambda p, v: v[0], jnp.asarray, (1,), {})
    m = evaluate(model, None, plain_data(x, y_trained, y_clean, corrupted), EvalData(x[:4], y_clean[:4]))
    assert float(m["train_acc"]) == pytest.approx(5 / 6)  # only sample 3 disagrees with its trained label
    assert float(m["train_acc_clean"]) == pytest.approx(4 / 6)  # samples 2 and 5 disagree
    assert float(m["memorization"]) == pytest.approx(2 / 3)  # corrupted 2 and 5 reproduce the flip, 3 does not
    assert float(m["val_acc"]) == pytest.approx(3 / 4)
    assert float(m["forget_acc_clean"]) == pytest.approx(1 / 3)  # sample 3 is predicted 0, its clean label
    assert float(m["retain_acc"]) == pytest.approx(5 / 6)
    m0 = evaluate(model, None, plain_data(x, y_clean, y_clean, jnp.zeros(6, bool)), EvalData(x, y_clean))
    assert np.isnan(float(m0["memorization"]))


def test_diverged_replicas_are_marked_and_left_out_of_averages():
    grid = pd.DataFrame(dict(program="mlp", model="mlp", arch="h64x16", corruption="flip", alpha=[0.2, 0.2, 0.2],
                             seed=[0, 1, 2], learning_rate=0.1))
    metrics = {k: np.array([[0.5, 0.6], [0.7, 0.8], [0.9, 0.95]]) for k in
               ("train_acc", "train_acc_clean", "val_acc", "memorization")}
    metrics["loss"] = np.array([[0.3, 0.2], [0.4, np.nan], [0.1, 0.1]])
    frame = _to_frame(grid, metrics, np.array([10, 10, 10]), np.arange(1, metrics['loss'].shape[1] + 1),
                      dict(n_params=100, encoding="amplitude", ansatz="-", depth=0, hidden="64x16"))
    assert frame.groupby("seed").diverged.all().tolist() == [False, True, False]
    summary = final_summary(frame)
    assert summary.n_seeds.item() == 2 and summary.n_diverged.item() == 1
    assert summary.val_acc_mean.item() == pytest.approx((0.6 + 0.95) / 2)


def test_eval_every_records_the_same_numbers_at_fewer_epochs():
    """Skipping the evaluation of some epochs changes nothing else: the recorded epochs equal a full run's."""
    from qrobust.engine import evaluated_epochs

    assert evaluated_epochs(7, 3) == [3, 6, 7] and evaluated_epochs(4, 1) == [1, 2, 3, 4]
    assert evaluated_epochs(5, 10) == [5]
    n, dim = 10, 3
    x, y = _toy(n, dim, seed=3)
    model = mlp(dim, (4,))
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    params = jax.vmap(model.init)(keys)
    data = plain_data(jnp.broadcast_to(jnp.asarray(x), (2, n, dim)), jnp.stack([jnp.asarray(y)] * 2),
                      jnp.stack([jnp.asarray(y)] * 2), jnp.zeros((2, n), bool))
    val = EvalData(jnp.asarray(x), jnp.asarray(y))
    lrs = jnp.array([0.02, 0.05])
    p_all, m_all = make_train_fn(model, epochs=7, batch_size=4, n_samples=n)(params, lrs, keys, data, val)
    p_some, m_some = make_train_fn(model, epochs=7, batch_size=4, n_samples=n, eval_every=3)(
        params, lrs, keys, data, val)
    for a, b in zip(jax.tree_util.tree_leaves(p_all), jax.tree_util.tree_leaves(p_some)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    for k in m_all:
        assert m_some[k].shape == (2, 3)
        np.testing.assert_allclose(np.asarray(m_some[k]), np.asarray(m_all[k])[:, [2, 5, 6]], atol=1e-6)


def test_map_and_vmap_over_replicas_agree():
    """The two ways of walking the replica axis train the same models."""
    n, dim, R = 12, 3, 3
    x, y = _toy(n, dim, seed=4)
    model = mlp(dim, (5,))
    keys = jax.random.split(jax.random.PRNGKey(3), R)
    params = jax.vmap(model.init)(keys)
    ys = jnp.stack([jnp.asarray(y), 1 - jnp.asarray(y), jnp.asarray(y)])
    data = plain_data(jnp.broadcast_to(jnp.asarray(x), (R, n, dim)), ys, ys, jnp.zeros((R, n), bool))
    val = EvalData(jnp.asarray(x), jnp.asarray(y))
    lrs = jnp.array([0.01, 0.05, 0.1])
    out = {mode: make_train_fn(model, epochs=3, batch_size=5, n_samples=n, replica_mode=mode)(params, lrs, keys,
                                                                                               data, val)
           for mode in ("vmap", "map")}
    for a, b in zip(jax.tree_util.tree_leaves(out["vmap"]), jax.tree_util.tree_leaves(out["map"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    with pytest.raises(ValueError, match="replica_mode"):
        make_train_fn(model, epochs=3, batch_size=5, n_samples=n, replica_mode="loop")


@pytest.mark.parametrize("mode", ["map", "vmap"])
def test_a_shorter_stream_takes_only_its_own_steps(mode, x64):
    """A replica whose stream (5 samples) is shorter than its program's longest (9) takes ceil(5 / 4) = 2 steps
    per epoch, exactly as when trained alone: its third, all-padding batch is no step (Adam would otherwise
    move the weights on a zero gradient)."""
    rng = np.random.default_rng(0)
    n, dim = 9, 3
    x = jnp.asarray(rng.normal(size=(n, dim)))
    y = jnp.asarray((rng.random(n) > 0.5).astype(np.float64))
    model = Model("lin", lambda k: 0.1 * jax.random.normal(k, (dim,), jnp.float64), lambda w, v: jnp.dot(w, v),
                  jnp.asarray, (dim,), {})
    short = np.zeros(n, bool)
    short[[0, 2, 3, 6, 8]] = True
    streams = jnp.asarray(np.stack([np.ones(n, bool), short]))
    data = plain_data(jnp.stack([x, x]), jnp.stack([y, y]), jnp.stack([y, y]), jnp.zeros((2, n), bool))
    data = data._replace(stream=streams)
    w0 = jnp.stack([model.init(jax.random.PRNGKey(1))] * 2)
    keys = jnp.stack([jax.random.PRNGKey(2)] * 2)
    val = EvalData(x, y)
    both, _ = make_train_fn(model, epochs=3, batch_size=4, n_samples=n, replica_mode=mode)(
        w0, jnp.array([0.05, 0.05]), keys, data, val)
    alone, _ = make_train_fn(model, epochs=3, batch_size=4, n_samples=5, replica_mode=mode)(
        w0[1:], jnp.array([0.05]), keys[1:], jax.tree_util.tree_map(lambda a: a[1:], data), val)
    np.testing.assert_allclose(np.asarray(both[1]), np.asarray(alone[0]), rtol=1e-12, atol=1e-14)


def test_the_program_runs_in_segments_of_epochs_without_changing_a_number():
    """The trainer advances the replicas a segment of epochs per call (progress is reported between calls, so
    the program holds no host callback); one call for all epochs gives the same bits."""
    from qrobust.engine import Trainer, segment_length

    assert segment_length(100) == 10 and segment_length(7) == 1 and segment_length(400) == 40
    n, dim, R = 10, 3, 2
    x, y = _toy(n, dim, seed=5)
    model = mlp(dim, (4,))
    keys = jax.random.split(jax.random.PRNGKey(4), R)
    params = jax.vmap(model.init)(keys)
    data = plain_data(jnp.broadcast_to(jnp.asarray(x), (R, n, dim)), jnp.stack([jnp.asarray(y)] * R),
                      jnp.stack([jnp.asarray(y)] * R), jnp.zeros((R, n), bool))
    val = EvalData(jnp.asarray(x), jnp.asarray(y))
    done = []
    segmented = make_train_fn(model, epochs=20, batch_size=4, n_samples=n, eval_every=3, progress=done.append)
    assert segmented.segment == 2
    whole = Trainer(segmented.recipe, n, segment=20)
    a, b = segmented(params, jnp.array([0.02, 0.05]), keys, data, val), whole(params, jnp.array([0.02, 0.05]), keys,
                                                                              data, val)
    assert done == [2] * 10
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_compiles_are_counted_and_a_cached_program_is_read_not_compiled(tmp_path, monkeypatch):
    """qrobust.compiles counts XLA's compiles of a block, and the persistent cache's hits: a program compiled
    once in another process is read back, not compiled again (what a repeated study costs)."""
    import subprocess
    import sys

    code = ("import jax, jax.numpy as jnp, json\nfrom qrobust.compilation_cache import use_compilation_cache\n"
            "from qrobust.compiles import count_compiles; use_compilation_cache()\n"
            "with count_compiles() as c:\n    jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.ones(7)).block_until_ready()\n"
            "print(json.dumps(c.as_dict()))")
    env = dict(__import__("os").environ, QROBUST_CACHE=str(tmp_path / "cache"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["compiled"] >= 1 and runs[0]["from_cache"] == 0
    assert runs[1]["compiled"] == 0 and runs[1]["from_cache"] >= 1
