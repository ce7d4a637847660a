"""How many replicas fit in one compiled program: free memory / per-replica footprint.

The footprint of a training program is read from XLA's own memory analysis of
the compiled program for ONE replica (arguments + outputs + scratch): replicas
are independent, so the program for R replicas needs about R times that (the
shared validation set is counted in every replica, which errs on the safe
side). Free memory is the device's (``memory_stats``) on an accelerator and the
host's available memory (``psutil``, on every operating system) on CPU. A chunk takes at most
``fraction`` of what is free, so the process keeps room for its inputs, results
and XLA's own buffers.
"""

from __future__ import annotations

import jax

from qrobust import sharding


def available_bytes(device: jax.Device | None = None) -> int:
    """Bytes free on ``device`` (default: the first device): device memory, or host memory on CPU."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        import psutil
    except ImportError:  # psutil is a dependency; without it, Linux's /proc/meminfo
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        raise RuntimeError("cannot read the free host memory: install psutil, or give --chunk-size") from None
    return int(psutil.virtual_memory().available)


def program_bytes(jitted, *args) -> int:
    """Arguments + outputs + scratch of ``jitted`` compiled for ``args`` (XLA's memory analysis)."""
    analysis = jitted.lower(*args).compile().memory_analysis()
    if analysis is None:  # a backend without the analysis: assume the arguments dominate
        return sum(getattr(a, "nbytes", 0) for a in jax.tree_util.tree_leaves(args))
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes)


def replicas_that_fit(per_replica_bytes: int, *, cap: int, fraction: float = 0.5,
                      free_bytes: int | None = None) -> int:
    """Replicas per chunk: at most ``cap``, at most ``fraction`` of free memory on every device, at least one
    per device, and a multiple of the device count."""
    if per_replica_bytes <= 0:
        raise ValueError(f"per-replica footprint must be positive, got {per_replica_bytes}")
    devices = sharding.device_count()
    free = available_bytes() if free_bytes is None else free_bytes
    per_device = max(1, int(fraction * free // per_replica_bytes))
    if jax.devices()[0].platform == "cpu":
        per_device = max(1, per_device // devices)  # CPU "devices" share the host's memory
    fit = min(cap, per_device * devices)
    return max(devices, fit // devices * devices)


def default_cap(quantum: bool) -> int:
    """Largest chunk worth running at once, for a quantum model (a QNN) or a classical one: on CPU time per
    replica stops falling at a few tens of replicas, and smaller chunks lose less to an interruption; an
    accelerator wants as many as fit."""
    on_cpu = jax.devices()[0].platform == "cpu"
    if quantum:
        return 50 if on_cpu else 1000
    return 200 if on_cpu else 4000
