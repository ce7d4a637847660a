"""Runs split by seed (``--seed-offset``, ``--seeds A:B``) merged into one run directory (``qrobust merge``).

Every run is read and checked before anything is written: each is a finished run of the same study, whose
settings equal the others' but for their seeds (no seed in two runs) and were made under the same numerics; each
of its chunks passes the store's checks (``RunDirectory.check_stored``: its record names it, its rows and its
run's settings; its table parses; its arrays load), and its results.csv is exactly the table its chunks make. The
merged directory then holds config.json (the settings with every seed, and ``merged_from``: each run, its settings'
digest and its seeds), the runs' chunks renumbered (their weights read by ``qrobust.load_results``), their
programs.json and the study's tables made from all the chunks' rows by the study's own ``merge`` function
(``registry.Study.merge``), the same function its run uses: so the tables equal those of one run over all the
seeds. A merged directory is not run or resumed (the store refuses it); it may be merged again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qrobust.errors import ConfigError, ResultsMismatchError
from qrobust.experiments import registry
from qrobust.files import unwritable
from qrobust.store import RunDirectory, _diff


class Merge(NamedTuple):
    """What ``qrobust merge`` writes: the study, the merged settings and numerics, the runs' records, the chunks
    to copy (run, its chunk name, the merged name), the programs and the tables."""

    study: str
    settings: dict
    numerics: dict | None
    merged_from: list
    chunks: list
    programs: dict
    tables: dict


def _config(run: Path) -> dict:
    try:
        config = json.loads((run / "config.json").read_text())
        if not isinstance(config.get("settings"), dict):
            raise TypeError("its settings are not a table")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run}/config.json is not a qrobust configuration ({exc})") from None
    return config


def _check_out(out: Path, runs: list[Path]) -> None:
    if len(runs) < 2:
        raise ConfigError("merge takes two runs or more: qrobust merge OUT RUN1 RUN2 ...")
    resolved = [r.resolve() for r in runs]
    if len(set(resolved)) < len(resolved):
        raise ConfigError("a run is named twice: each run's seeds would be counted twice")
    if out.resolve() in resolved:
        raise ConfigError(f"{out} is one of the runs: merge into a new directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory: merge into a new one")
    reason = unwritable(out)
    if reason is not None:
        raise ConfigError(f"cannot write {out}: {reason}")


def _rows(store: RunDirectory, names: list[str], columns: list[str]) -> pd.DataFrame:
    """The result rows of a run: its chunks whose table has results.csv's columns (not a poisoner's references)."""
    frames = [f for f in (store.read_chunk(n) for n in names) if list(f.columns) == columns]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def plan_merge(runs) -> Merge:
    """Read and check ``runs`` (module docstring): what merging them writes. Nothing is written."""
    runs = [Path(r) for r in runs]
    studies = {registry.study_of(r) for r in runs}  # each a finished run (ConfigError naming the one that is not)
    if len(studies) > 1:
        raise ConfigError(f"the runs are of different studies ({', '.join(sorted(studies))}): merge runs of one")
    name = studies.pop()
    entry = registry.study(name)
    merge = entry.get("merge")
    if merge is None:
        mergeable = ", ".join(s for s in registry.names() if registry.study(s).merge)
        raise ConfigError(f"runs of the {name} study are not merged (qrobust merge takes runs of: {mergeable})")
    configs = [_config(r) for r in runs]
    first = configs[0]
    seen: dict[int, Path] = {}
    for run, config in zip(runs, configs):
        diffs = _diff({k: v for k, v in config["settings"].items() if k != "seeds"},
                      {k: v for k, v in first["settings"].items() if k != "seeds"})
        diffs += _diff(config.get("numerics"), first.get("numerics"))
        if diffs:
            raise ResultsMismatchError(f"{run} was made with other settings than {runs[0]}, not only other seeds: "
                                       + "; ".join(d.replace(" asked for", f" in {runs[0]}") for d in diffs[:8]))
        for seed in config["settings"].get("seeds", []):
            if seed in seen:
                raise ResultsMismatchError(f"seed {seed} is in {seen[seed]} and in {run}: runs to merge must hold "
                                           "different seeds")
            seen[seed] = run
    return _read(runs, configs, name, merge)


def _read(runs: list[Path], configs: list[dict], study: str, merge) -> Merge:
    """Every run's chunks checked, its results.csv checked against them; the merged tables."""
    chunks, rows, merged_from, programs, numbers = [], [], [], None, {}
    for run, config in zip(runs, configs):
        store = RunDirectory(run, config["settings"], study=study)  # its digest: the one its chunks carry
        store.chunk_format = config.get("chunk_format", 1)
        names = sorted(p.stem for p in (run / "chunks").glob("*.csv"))
        for chunk in names:
            why = store.check_stored(chunk)
            if why is not None:
                raise ResultsMismatchError(f"chunk {chunk} of {run} is not that run's: {why}. The run is damaged: "
                                           "resume it (the chunk is run again) before merging it")
            key = chunk.rsplit("-", 1)[0]
            numbers[key] = numbers.get(key, -1) + 1
            chunks.append((store, chunk, f"{key}-{numbers[key]:04d}"))
        results = pd.read_csv(run / "results.csv")
        own = _rows(store, names, list(results.columns))
        if merge(own)["results.csv"].to_csv(index=False) != (run / "results.csv").read_text():
            raise ResultsMismatchError(f"{run}/results.csv is not the table its chunks make: the run is damaged; "
                                       "delete results.csv and resume the run, then merge it")
        rows.append(own)
        recorded = store.recorded_programs()
        if programs is not None and recorded != programs:
            raise ResultsMismatchError(f"{run}/programs.json builds its models otherwise than {runs[0]}'s")
        programs = recorded
        merged_from.append(dict(run=str(run), settings_digest=store.digest, seeds=config["settings"].get("seeds")))
    settings = dict(configs[0]["settings"], seeds=sorted(s for c in configs for s in c["settings"].get("seeds", [])))
    return Merge(study, settings, configs[0].get("numerics"), merged_from, chunks, programs or {},
                 merge(pd.concat(rows, ignore_index=True)))


def write_merge(out, plan: Merge) -> list[str]:
    """Write the merged run directory ``out`` (config.json first, the study's marking table last). Returns the
    tables written."""
    store = RunDirectory(out, plan.settings, study=plan.study, numerics=plan.numerics,
                         merged_from=plan.merged_from).open()
    for source, name, new in plan.chunks:
        store.copy_chunk(source, name, new)
    store.record_programs(plan.programs)
    marker = registry.study(plan.study).tables[0]
    order = sorted(plan.tables, key=lambda t: t == marker)
    for table in order:
        store.write_table(table, plan.tables[table])
    return order


def merge_runs(out, runs) -> list[str]:
    """Merge ``runs`` (split by seed) into the new run directory ``out``: every check first, then the writes."""
    out = Path(out)
    _check_out(out, [Path(r) for r in runs])
    plan = plan_merge(runs)
    return write_merge(out, plan)
