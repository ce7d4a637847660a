"""The replica axis sharded over 4 forced CPU devices gives the results of one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ARGS = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "6", "--epochs", "3", "--seeds", "6",
        "--alphas", "0,0.5", "--corruption", "flip", "--batch-size", "4", "--depth", "2", "--hidden", "8,4",
        "--no-progress"]


def _forced_devices(devices):
    """The environment of a process whose JAX sees ``devices`` CPU devices."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def _run(out, devices, chunk_size):
    code = ("import sys, jax; from qrobust.cli import main; "
            f"assert jax.device_count() == {devices}; sys.exit(main(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, *ARGS, "--chunk-size", str(chunk_size), "--out", str(out)], check=True,
                   env=_forced_devices(devices),
                   capture_output=True, text=True)
    return pd.read_csv(out / "results.csv")


@pytest.mark.slow  # 41 s; CI runs it (the default suite stays under 10 minutes on 2 cores)
def test_four_devices_give_the_results_of_one(tmp_path):
    """12 replicas per model: one device runs chunks of 3, four devices one chunk of 12 (3 per device).

    XLA compiles the sharded program differently, so float32 results agree to rounding (~1e-7), not to the
    bit; a prediction whose logit lies that close to 0 can flip. So: every loss within 1e-6, and an
    accuracy differs in few rows, by one sample at most.
    """
    one = _run(tmp_path / "one", 1, 3)
    four = _run(tmp_path / "four", 4, 12)
    assert len(one) == 2 * 2 * 6 * 3  # models x alphas x seeds x epochs
    grid = ["model", "corruption", "alpha", "seed", "learning_rate", "epoch", "diverged", "n_corrupted"]
    pd.testing.assert_frame_equal(one[grid], four[grid], check_exact=True)
    assert (one.loss - four.loss).abs().max() < 1e-6
    for column, n in (("train_acc", 12), ("val_acc", 80)):
        gap = (one[column] - four[column]).abs()
        assert gap.max() <= 1 / n + 1e-6 and (gap > 1e-6).mean() <= 0.05


NATIVE_CODE = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from qrobust import sharding
from qrobust.engine import EvalData, make_train_fn, plain_data
from qrobust.models import batch_logits, qnn

devices, mode = int(sys.argv[1]), sys.argv[2]
assert jax.device_count() == devices
n, R, N = 5, 8, 12
rng = np.random.default_rng(0)
x = rng.normal(size=(N, 2**n))
x /= np.linalg.norm(x, axis=1, keepdims=True)
y = jnp.asarray(np.arange(N) % 2, jnp.float32)
model = qnn(n, 2, simulator="native")
xs = model.prepare(x)
params = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), R))
data = plain_data(jnp.broadcast_to(xs, (R,) + xs.shape), jnp.broadcast_to(y, (R, N)), jnp.broadcast_to(y, (R, N)),
                  jnp.zeros((R, N), bool))
epochs = []
train = make_train_fn(model, epochs=2, batch_size=4, n_samples=N, replica_mode=mode, progress=epochs.append)
final, metrics = train(params, jnp.full((R,), 0.05), jax.random.split(jax.random.PRNGKey(1), R), data,
                       EvalData(xs, y))
jax.effects_barrier()
hlo = ""
if devices > 1:  # the program each device runs: its own replicas, the kernel on its shard, no communication
    grad = jax.grad(lambda p, s: jnp.sum(jax.vmap(batch_logits(model), in_axes=(0, None))(p, s)))
    mesh = sharding.replica_mesh()
    program = sharding.per_device(grad, mesh, shared_argnums=(1,))
    hlo = program.lower(sharding.shard_replicas(params, mesh), xs).compile().as_text()
print(json.dumps(dict(params=np.asarray(final).tolist(), loss=np.asarray(metrics["loss"]).tolist(),
                      epochs=[int(e) for e in epochs], custom_calls=hlo.count("custom-call("),
                      collectives=sum(hlo.count(c) for c in ("all-gather", "all-reduce", "all-to-all",
                                                              "collective-permute")))))
"""


def _run_native(devices, mode):
    done = subprocess.run([sys.executable, "-c", NATIVE_CODE, str(devices), mode], check=True,
                          env=_forced_devices(devices),
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # kept out of the default suite (10 minutes on 2 cores); CI runs it
def test_native_simulator_over_four_devices_runs_each_shard_locally():
    """The C++ kernel has no partitioning rule: each device must run it on its own replicas (shard_map), not
    gather every replica first. Same numbers as one device, in both replica modes; progress after each epoch."""
    one = _run_native(1, "map")
    for mode in ("vmap", "map"):
        four = _run_native(4, mode)
        np.testing.assert_allclose(four["params"], one["params"], atol=1e-6)
        np.testing.assert_allclose(four["loss"], one["loss"], atol=1e-6)
        assert four["epochs"] == one["epochs"] == [1, 1]
        assert four["custom_calls"] > 0 and four["collectives"] == 0
