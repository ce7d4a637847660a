"""A store of trained replicas keyed by content: a replica any study needs that was already trained, by any
study, is read back instead of trained again.

A replica's training is a pure function of its *determinants*; ``replica_keys`` hashes them (SHA-256 of
canonical JSON) into one digest per replica:

- the program: the registry model, its settings (architecture, epochs, batch size, learning rate, optimiser),
  the inputs' shape and encoding, and the numerics (dtype, simulator, matmul precision) (``Program.description``);
- the trainer: objective, margins recorded, how the replica axis is walked (``replica_mode``) and, where that is
  "vmap" (accelerators, whose batched arithmetic may depend on the batch), the chunk's replica count. Not the
  evaluation schedule: it does not change training, and an entry keeps the metrics of the epochs its run
  evaluated, so a study that reads a subset of them (a teacher evaluated at its last epoch only) reuses it;
- the data: a digest of the training and validation arrays and labels;
- the replica: seed (which keys its initialisation, corruption and batch order: ``qrobust.keys``), corruption and
  its count, the aimed poisoners' priorities row, the learning rate, the samples it trains on;
- the code that trains it: a digest of qrobust's own source (every ``.py`` and the native kernel's C++), and
  JAX's numerics (``qrobust.provenance.numerics``: versions, PRNG, platform).

So a reuse is exact: the same determinants give the same bits (on CPU a replica's numbers do not depend on the
chunk it trains in; tests/test_replicas.py checks a study run after another against the same study run alone).
Only what qrobust itself defines is reused: a user's model or optimiser (its code is not in the digest), a custom
objective or custom inputs make a program that trains every replica (``why_not``).

Entries live in the cache (``qrobust.cache``: ``replicas/``, one ``.npz`` per replica: its flat trained
parameters and its recorded metrics) with the cache's guarantees (a digest of the content, checked when read;
only this user's; atomic writes; never through a link). ``QROBUST_REUSE=0`` turns the store off (nothing read or
written). A study's run directory records in ``replicas.json`` how many of each program's replicas were read
back and how many trained.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

import qrobust
from qrobust import cache

VARIABLE = "QROBUST_REUSE"
FORMAT = 1
_TRAINER_OPTIONS = ("eval_every", "record_margins", "replica_mode")  # the only trainer keywords a reusable one has


_PLANNED: set[str] = set()  # the programs (``Program.plan_key``) whose declared replicas a plan in this process trained


def mark_planned(keys) -> None:
    """The reproduction's replica plan (``qrobust.experiments.replica_plan``) trained these programs' replicas."""
    _PLANNED.update(keys)


def planned(key: str | None) -> bool:
    """Whether a plan in this process trained the program ``key``'s declared replicas: its part reads them back
    and needs no probe of the program's memory to size its chunks (``chunks.fitted_chunk_size``)."""
    return key is not None and key in _PLANNED


def enabled() -> bool:
    return os.environ.get(VARIABLE, "1").strip() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of qrobust's source files (their paths relative to the package and their bytes)."""
    root = Path(qrobust.__file__).parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".cc", ".h", ".cpp") and p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def data_digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()


def why_not(model: str, optimizer: str | None, options: dict, custom_inputs: bool) -> str | None:
    """Why a program's replicas cannot be reused (None: they can): only qrobust's own models, optimisers,
    objective and inputs are in the digest."""
    from qrobust.models import registry

    if not enabled():
        return f"${VARIABLE} is off"
    if model not in registry.BUILT_IN + registry.CONTROLS:
        return f"{model!r} is a user's model"
    if optimizer not in (None, "adam") and not str(optimizer).startswith("adamw_wd"):
        return f"the optimiser {optimizer!r} is a user's"
    if custom_inputs or set(options) - set(_TRAINER_OPTIONS):
        return "the program has its own inputs or objective"
    return None


def _scores(scores, i: int):
    """The digest of replica i's aimed-poisoner priorities; None where there are none (None and all-zero rows are
    the same input: ``make_chunk_inputs`` fills zeros)."""
    if scores is None:
        return None
    row = np.asarray(scores)[i]
    return None if not np.any(row) else data_digest(row.astype(np.float32))


def replica_keys(base: dict, seeds, kinds, counts, scores, rates, stream) -> list[str]:
    """One digest per replica: ``base`` (what its program, data, trainer and code share) and its own row."""
    from qrobust.provenance import numerics

    shared = json.dumps({"format": FORMAT, "code": code_digest(), "numerics": numerics(), **base}, sort_keys=True,
                        default=str)
    keys = []
    for i in range(len(seeds)):
        row = {"seed": int(seeds[i]), "kind": int(kinds[i]), "count": int(counts[i]),
               "rate": float(np.float32(rates[i])), "scores": _scores(scores, i),
               "stream": None if stream is None else data_digest(np.asarray(stream, bool)[i])}
        keys.append(hashlib.sha256((shared + json.dumps(row, sort_keys=True)).encode()).hexdigest())
    return keys


def _path(key: str) -> Path:
    return cache.cache_dir() / "replicas" / key[:2] / f"{key}.npz"


def _load(key: str) -> dict | None:
    """The stored entry of ``key`` (every array; it must hold its params and epochs), or None."""
    path = _path(key)
    if not path.exists():
        return None
    return cache.load_arrays(path, ("params", "recorded"), what="a stored replica")


def read(keys: list[str], recorded) -> tuple[np.ndarray, dict] | None:
    """The stored (flat params (R, P), metrics {name: (R, len(recorded), ...)}) of every replica of ``keys``, the
    metrics at the 0-based epochs ``recorded`` (an entry holds those of the run that trained it: any subset of
    them is read back), or None unless every replica is stored, sound and has those epochs."""
    recorded = np.asarray(recorded, int)
    loaded = {}
    for key in dict.fromkeys(keys):  # a chunk's padding repeats its replicas: each entry is read once
        entry = _load(key)
        if entry is None:
            return None
        at = {int(e): j for j, e in enumerate(entry["recorded"])}
        if any(int(e) not in at for e in recorded):
            return None
        loaded[key] = (entry, [at[int(e)] for e in recorded])
    found = [loaded[key] for key in keys]
    params = np.stack([e["params"] for e, _ in found])
    metrics = {n[2:]: np.stack([e[n][idx] for e, idx in found]) for n in found[0][0] if n.startswith("m:")}
    return params, metrics


def write(keys: list[str], params: np.ndarray, metrics: dict, recorded) -> None:
    """Keep each replica's flat params and its metrics at the 0-based epochs ``recorded`` (rows of ``params`` and
    of each metric, in ``keys``' order). An entry already stored is replaced only by one with more epochs."""
    recorded = np.asarray(recorded, int)
    first = {key: i for i, key in reversed(list(enumerate(keys)))}  # padding repeats: each replica once
    for key, i in first.items():
        old = _load(key)
        if old is not None and set(recorded.tolist()) <= set(old["recorded"].tolist()):
            continue
        cache.store_arrays(_path(key), {"params": np.asarray(params[i]), "recorded": recorded,
                                        **{f"m:{k}": np.asarray(v[i]) for k, v in metrics.items()}},
                           what="a trained replica")


def counted(directory: Path) -> dict:
    """{"reused": n, "trained": n, "reused_epochs": n, "trained_epochs": n}: the replicas (and replica-epochs)
    every run under ``directory`` read back from the store and trained (their replicas.json files; a damaged one
    is skipped)."""
    total = {"reused": 0, "trained": 0, "reused_epochs": 0, "trained_epochs": 0}
    for path in sorted(Path(directory).rglob("replicas.json")):
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for entry in recorded.values() if isinstance(recorded, dict) else ():
            for k in total:
                if isinstance(entry, dict) and isinstance(entry.get(k), int):
                    total[k] += entry[k]
    return total
