"""Spreading the replica axis over devices (jax.sharding) and the chunks over hosts.

Within a process, replicas are independent, so the leading replica axis of every
per-replica input is split over a one-dimensional mesh of the process's local
devices, the shared inputs (the validation set) are replicated, and each device
runs the one-device program on its own replicas (``shard_map``, ``per_device``):
no communication, by construction, and custom kernels (the native simulator)
run on their local shard. With one device nothing changes.
A chunk's replica count must be a multiple of the number of local devices;
``plan_chunks`` pads chunks to one.

Over hosts (one process per host, started with ``jax.distributed.initialize``,
see ``initialize_distributed``), the chunks of a study are dealt out: process p
of P runs the chunks p, p + P, p + 2P, ... of those not yet stored, on its own
devices, and writes them to the shared run directory; after a barrier every
process reads all chunks, and process 0 alone writes the merged tables and
figures. No array ever crosses hosts.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "replica"


def device_count() -> int:
    """Devices the replica axis is spread over (this process's devices)."""
    return jax.local_device_count()


def cpu_only() -> bool:
    """Whether this process's devices are CPUs (one, or several forced host devices): no accelerator."""
    return jax.local_devices()[0].platform == "cpu"


def replica_mesh() -> Mesh:
    return Mesh(np.array(jax.local_devices()), (AXIS,))


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-host job: ``jax.distributed.initialize``. Arguments None are read from the variables
    JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID, else left to
    JAX's cluster detection (SLURM, Open MPI, ...)."""
    import os

    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def process_count() -> int:
    return jax.process_count()


def is_primary() -> bool:
    """Whether this process writes a study's merged outputs (process 0; always, with one process)."""
    return jax.process_index() == 0


class PeerFailedError(RuntimeError):
    """Another process of the job failed (and said so), so this one stops instead of waiting for it."""


_POLL_S = 0.1
_FAILED = "qrobust/failed/"
_counters = {"barrier": 0, "decision": 0}


def _client():
    from jax._src import distributed  # the client jax.distributed.initialize made

    return distributed.global_state.client


def _next(kind: str) -> int:
    _counters[kind] += 1
    return _counters[kind]


def _wait(ready: Callable[[], Any], what: str, timeout_s: float) -> Any:
    """Poll the key-value store until ``ready()`` returns something not None; stop at once if a process
    announced a failure (``announce_failure``)."""
    client = _client()
    deadline = time.monotonic() + timeout_s
    while True:
        answer = ready()  # first: a wait that is over is passed, even if a process failed after it
        if answer is not None:
            return answer
        failures = client.key_value_dir_get(_FAILED)
        if failures:
            answer = ready()  # the wait may have ended between the two reads, and the failure come after it
            if answer is not None:
                return answer
            raise PeerFailedError("; ".join(f"process {k.rsplit('/', 1)[-1]} failed: {v}" for k, v in failures)
                                  + f" (while this one, process {jax.process_index()}, waited at {what})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {jax.process_index()} waited {timeout_s:.0f} s at {what}")
        time.sleep(_POLL_S)


def barrier(name: str, timeout_s: float = 7 * 24 * 3600) -> None:
    """Wait until every process got here (nothing to do with one process).

    Built on the coordination service's key-value store (the one
    ``jax.distributed`` starts), not on a device collective: processes may
    arrive hours apart, after shares of chunks of different lengths, and no
    accelerator collective (or CPU gloo) is involved. Every process passes the
    same barriers in the same order: a counter numbers them, and arriving at
    barrier n under different names is an error (a bug, not a wait). If any
    process announced a failure, the others raise ``PeerFailedError`` instead
    of waiting for it.
    """
    if jax.process_count() == 1:
        return
    client, n = _client(), _next("barrier")
    prefix = f"qrobust/barrier/{n}/"
    client.key_value_set(f"{prefix}{jax.process_index()}", name)

    def everyone_arrived():
        arrived = client.key_value_dir_get(prefix)
        names = {v for _, v in arrived}
        if len(names) > 1:
            raise RuntimeError(f"processes reached barrier {n} at different places: {sorted(names)}")
        return True if len(arrived) == jax.process_count() else None

    _wait(everyone_arrived, f"barrier {n} ({name})", timeout_s)


def decided_by_primary(name: str, decide: Callable[[], Any], timeout_s: float = 7 * 24 * 3600) -> Any:
    """``decide()`` run on process 0 alone, its (JSON-able) answer handed to every process through the
    coordination service's key-value store. For choices that must agree across hosts although each host
    would answer differently (a chunk size read off its own free memory). With one process: ``decide()``."""
    if jax.process_count() == 1:
        return decide()
    client, n = _client(), _next("decision")
    prefix = f"qrobust/decision/{n}/"  # the store lists directories only, so the answer lives in one
    key = prefix + "answer"
    if is_primary():
        answer = decide()
        client.key_value_set(key, json.dumps(dict(name=name, answer=answer)))
        return answer

    def decided():
        found = dict(client.key_value_dir_get(prefix))  # empty until process 0 wrote it
        return json.loads(found[key]) if key in found else None

    got = _wait(decided, f"decision {n} ({name})", timeout_s)
    if got["name"] != name:
        raise RuntimeError(f"process 0 made decision {n} about {got['name']!r}, this process asked for {name!r}")
    return got["answer"]


def announce_failure(message: str) -> None:
    """Tell the other processes that this one failed, so that they stop at their next wait instead of
    hanging in it (a process that dies without a word is found only by the service's heartbeat)."""
    if jax.process_count() > 1:
        _client().key_value_set(f"{_FAILED}{jax.process_index()}", message[:2000])


def my_share(items: list) -> list:
    """This process's share of ``items``: every P-th one, starting at its index."""
    return items[jax.process_index()::jax.process_count()]


def per_device(fn: Callable, mesh: Mesh, *, shared_argnums: tuple[int, ...] = ()) -> Callable:
    """``fn(*args) -> outputs``, every output with a leading replica axis, run by each device of ``mesh`` on
    its slice of the replica axis of the arguments; those in ``shared_argnums`` are given whole to every
    device. Jitted. ``fn`` sees R / n_devices replicas and may call ``jax.lax.axis_index(AXIS)``."""
    # no collectives, so JAX's tracking of which values vary over devices is not needed (and custom VJPs,
    # such as the native simulator's, do not carry it)
    if hasattr(jax, "shard_map"):
        shard_map = functools.partial(jax.shard_map, check_vma=False)
    else:  # jax < 0.7
        from jax.experimental.shard_map import shard_map as experimental
        shard_map = functools.partial(experimental, check_rep=False)

    def run(*args):
        specs = tuple(PartitionSpec() if i in shared_argnums else PartitionSpec(AXIS) for i in range(len(args)))
        return shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(AXIS))(*args)

    return jax.jit(run)


def shard_replicas(tree, mesh: Mesh):
    """Place every leaf's leading (replica) axis across the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
    """Place a full copy of every leaf on every device."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
