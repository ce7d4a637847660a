"""Spreading the replica axis over devices (jax.sharding) and the chunks over hosts.

Within a process, replicas are independent, so the leading replica axis of every
per-replica input is split over a one-dimensional mesh of the process's local
devices, the shared inputs (the validation set) are replicated, and XLA runs
each device's replicas with no communication. With one device nothing changes.
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

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "replica"


def device_count() -> int:
    """Devices the replica axis is spread over (this process's devices)."""
    return jax.local_device_count()


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


_barriers_passed = 0


def barrier(name: str, timeout_s: float = 7 * 24 * 3600) -> None:
    """Wait until every process got here (nothing to do with one process).

    This is the coordination service's barrier (the one ``jax.distributed``
    starts), not a device collective: processes may arrive hours apart, after
    shares of chunks of different lengths, and no accelerator collective (or
    CPU gloo) is involved. Every process passes the same barriers in the same
    order, so a counter makes each one's id unique.
    """
    global _barriers_passed
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the client jax.distributed.initialize made

    _barriers_passed += 1
    distributed.global_state.client.wait_at_barrier(f"qrobust-{_barriers_passed}-{name}", int(timeout_s * 1000))


def my_share(items: list) -> list:
    """This process's share of ``items``: every P-th one, starting at its index."""
    return items[jax.process_index()::jax.process_count()]


def shard_replicas(tree, mesh: Mesh):
    """Place every leaf's leading (replica) axis across the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
    """Place a full copy of every leaf on every device."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
