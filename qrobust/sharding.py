"""Spreading the replica axis over devices (jax.sharding).

Replicas are independent, so the leading replica axis of every per-replica
input is split over a one-dimensional mesh of all devices, the shared inputs
(the validation set) are replicated, and XLA runs each device's replicas with
no communication. With one device nothing changes. A chunk's replica count must
be a multiple of the number of devices; ``plan_chunks`` pads chunks to one.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "replica"


def device_count() -> int:
    """Devices the replica axis is spread over (all of JAX's devices)."""
    return jax.device_count()


def replica_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), (AXIS,))


def shard_replicas(tree, mesh: Mesh):
    """Place every leaf's leading (replica) axis across the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
    """Place a full copy of every leaf on every device."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
