"""The reproduction's report: ``DIR/report.html`` (one self-contained file: figures embedded, no network) and
``DIR/report.md``, generated from a reproduction directory alone (``qrobust report DIR``), so a finished
run is re-reported without training.

A surface (docs/design.md): it reads the parts' tables (``qrobust.results``), draws their figures
(``qrobust.report``), asks ``qrobust.analysis.claims`` for the verdicts and writes the two files. No
science lives here.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

import pandas as pd

from qrobust.analysis import claims
from qrobust.errors import ConfigError, DamagedRunError
from qrobust.experiments.reproduce import PARTS
from qrobust.files import atomic_write_text
from qrobust.results import load_results
from qrobust.store import read_seconds


def _store_critical(where: Path) -> None:
    """A sweep's critical points, stored as ``qrobust analyze`` would (a gauge study's: each gauge's sweep), so the
    figures and the verdicts read the same table."""
    from qrobust.analysis.critical import critical_points
    from qrobust.experiments.registry import study_of

    kind = study_of(where)
    sweeps = [where] if kind in ("sweep", "controls") else [d for d in where.iterdir() if (d / "results.csv").is_file()] \
        if kind == "gauge" else []
    for run_dir in sweeps:
        stored = run_dir / "critical_points.csv"
        if not stored.is_file():
            table = critical_points(load_results(run_dir)["results"])
            atomic_write_text(stored, table.to_csv(index=False))


def _section(part, out: Path) -> dict | None:
    """One part's figures, verdicts (its study's judges, ``qrobust.analysis.claims``) and provenance; None where
    the part was never run."""
    from qrobust import report
    from qrobust.experiments.registry import study

    where = out / part.name
    if not where.is_dir():
        return None
    try:
        _store_critical(where)
        run = load_results(where)
        figures = report.draw(where)
        judge, tables = study(run.study).get("claims"), study(run.study).get("report_tables")
        verdicts = judge(run, part.name) if judge is not None else []
        tables = tables(run) if tables is not None else []
    except DamagedRunError as exc:  # a table or config.json that does not parse: said so, not hidden as "not run"
        return dict(part=part, figures=[], verdicts=[claims.Verdict(part.title, "-", str(exc), "damaged", part.name)],
                    provenance={})
    except ConfigError:  # a part started but not finished: its tables are not there yet
        return dict(part=part, figures=[], verdicts=[claims.Verdict(part.title, "-", "-", "not run", part.name)],
                    provenance={})
    configs = [r.path / "config.json" for r in run.runs.values()] or [where / "config.json"]
    return dict(part=part, figures=figures, verdicts=verdicts, tables=tables,
                provenance=dict(_provenance(configs), chunk_seconds=_chunk_seconds(where)))


def _chunk_seconds(where: Path) -> float:
    """The seconds the part's chunks trained for, summed from their ``.seconds`` files.

    Each file is written when its chunk finishes, so this sum survives what ``reproduce.json`` cannot: a call
    killed outright (SIGKILL, a lost session) loses its recorded wall time but keeps its finished chunks' time.
    Only the chunks of each run directory's current plan count: a finished chunk (its table is there) whose
    record (NAME.json) names the digest of the settings in that directory's config.json and, where
    chunk_sizes.json records its program's chunk size, that size. Not a chunk of an older plan or of other
    settings, one set aside (``chunks/rejected``), or a file reached through a link out of its run directory.
    A directory made before chunks had records (``chunk_format`` 1) counts every finished chunk; one without a
    config.json, whose plan cannot be known, every chunk's time, as before plans were checked.
    """
    import os

    from qrobust.files import outside
    from qrobust.store import RunDirectory

    total = 0.0
    for chunks in sorted(p for p in where.rglob("chunks") if p.is_dir() and p.name == "chunks"):
        run = chunks.parent
        known = os.path.lexists(run / "config.json")
        if any(os.path.lexists(f) and outside(f, run) for f in (run / "config.json", run / "chunk_sizes.json")):
            continue  # nothing of it is read through a link out of it
        try:
            config = json.loads((run / "config.json").read_text()) if known else {}
            digest = RunDirectory(run, config["settings"]).digest if known else None
            recorded = known and config.get("chunk_format", 1) >= 2
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        try:
            sizes = json.loads((run / "chunk_sizes.json").read_text())
            sizes = sizes if isinstance(sizes, dict) else {}
        except (OSError, ValueError):
            sizes = {}
        for seconds in chunks.glob("*.seconds"):
            files = [seconds.with_suffix(s) for s in (".seconds", ".csv", ".json")]
            if any(outside(f, run) for f in files if os.path.lexists(f)) or (known and not files[1].is_file()):
                continue
            if recorded:
                try:
                    record = json.loads(files[2].read_text())
                except (OSError, ValueError):
                    continue
                if (not isinstance(record, dict) or record.get("settings_digest") != digest
                        or record.get("chunk") != seconds.stem):
                    continue
                planned = sizes.get(seconds.stem.rsplit("-", 1)[0])
                if planned is not None and record.get("chunk_size") not in (None, planned):
                    continue
            value = read_seconds(seconds)
            if not math.isnan(value):  # a damaged file's time is unknown: left out
                total += value
    return float(total)


def _provenance(configs) -> dict:
    out = {}
    for path in configs:
        try:
            c = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        s = c.get("settings", {})
        out.setdefault("seeds", s.get("seeds"))
        out.setdefault("simulators", s.get("simulators"))
        out.setdefault("devices", c.get("devices"))
        out.setdefault("versions", c.get("versions"))
        out.setdefault("created", c.get("created"))
    return out


def build(out: str | Path) -> dict:
    """Everything the report shows, from the directory ``out`` of ``qrobust reproduce``."""
    out = Path(out)
    record_path = out / "reproduce.json"
    if not record_path.is_file():
        raise ConfigError(f"{out} is not a reproduction directory (no reproduce.json): run qrobust reproduce "
                          f"--out {out} first")
    from qrobust.experiments.reproduce import read_record

    record, damage = read_record(out)
    if damage is not None:
        record = {"profile": f"unknown (reproduce.json is damaged: {damage})"}
    sections = [s for s in (_section(p, out) for p in PARTS) if s is not None]
    verdicts = [v for s in sections for v in s["verdicts"]]
    return dict(record=record, sections=sections, verdicts=verdicts, out=out)


_METHOD = ("Each verdict applies the stated rule to the measured quantity (the mean over seeds) and reads its "
           f"{claims.LEVEL:.0%} interval, a bootstrap over seeds ({claims.N_BOOT} resamples, a seed's runs resampled "
           "together, a fixed generator: the same data give the same intervals): it holds when the whole interval "
           "is on the rule's side of the threshold, departs when the whole interval is on the other side, and is "
           "indeterminate when the interval straddles the threshold; undefined where the quantity is not a "
           "number. With one run there is no interval: the verdict is read from the value and says so. Rules "
           "marked generic are passed by any learner that does not memorise (class-balanced flips invert the "
           "label majority at alpha = 0.5): they show that the QNN does not memorise, not that it is quantum; where "
           "a run trained controls, the last column names those that pass the rule too. Where the paper published "
           "the numbers (its Fig. 2 final accuracies and Fig. 3 curves, five runs each, qrobust.paper), a column "
           "applies the same rule to them: a claim that departs there too departs in the paper's own data, not only "
           "in this reproduction.")


def _times(report: dict) -> str:
    """The parts' recorded wall time and their chunks' training time (the latter survives a killed call)."""
    wall = sum(p.get("seconds", 0) for p in report["record"].get("parts", {}).values())
    trained = sum(s["provenance"].get("chunk_seconds", 0) for s in report["sections"])
    return f"wall time of the parts {wall / 60:.1f} min, their chunks trained for {trained / 60:.1f} min"


def _md(text) -> str:
    """Text quoted into Markdown as it is: every character Markdown would read as markup (emphasis, code, links,
    raw HTML) escaped, so a run directory's name or a device's cannot end a code span or open HTML."""
    out = []
    for ch in str(text):
        if ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&":
            out.append("&amp;")
        elif ch in "\\`*_[]|#!":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _code(text) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds (delimited by one more than its longest
    run of them)."""
    text = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """A Markdown table cell: ``_md`` (a literal |, as in "max |train - (1 - alpha)|", is escaped, not a column
    break)."""
    return _md(text)


_ALSO = "also passed by (controls)"


def _also(verdicts) -> bool:
    """Whether a verdict table gets the "also passed by" column: some verdict was applied to controls."""
    return any(getattr(v, "also_passed_by", "") for v in verdicts)


def _verdict_md(verdict: str) -> str:
    """The verdict cell: holds, departs (and the rest) bold; indeterminate in italics, set apart."""
    return f"*{_md(verdict)}*" if verdict == "indeterminate" else f"**{_md(verdict)}**"


def _verdict_table_md(verdicts) -> list[str]:
    also = _also(verdicts)
    head = ["claim", "rule", "measured", f"{claims.LEVEL:.0%} interval", "verdict", "the paper's own numbers"]
    head += [_ALSO] if also else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in verdicts:
        claim = _cell(v.claim) + (f" *({_cell(v.generic)})*" if v.generic else "")
        cells = [claim, _cell(v.rule), _cell(v.measured), _cell(v.interval or "-"), _verdict_md(v.verdict),
                 _cell(v.paper or "-")] + ([_cell(v.also_passed_by or "-")] if also else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _table_md(table: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(_cell(str(c)) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(_cell(str(v)) for v in row) + " |" for row in table.itertuples(index=False)]


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def to_markdown(report: dict) -> str:
    rec, out = report["record"], report["out"]
    lines = ["# Does the paper hold? qrobust's reproduction of arXiv:2508.02422", "",
             f"Profile: **{_md(rec.get('profile'))}**; {_times(report)}. "
             f"{_METHOD}", "", "## Verdicts", ""]
    lines += _verdict_table_md(report["verdicts"])
    for s in report["sections"]:
        part = s["part"]
        lines += ["", f"## {part.title}", ""]
        for fig in s["figures"]:
            lines.append(f"![{fig.name}]({Path(fig).relative_to(out)})")
        if s["verdicts"]:
            lines += [""] + _verdict_table_md(s["verdicts"])
        for title, table in s.get("tables", []):
            lines += ["", f"**{_md(title)}**", ""] + _table_md(table)
        entry = rec.get("parts", {}).get(part.name, {})
        lines += ["", f"Reproduce: {_code(entry.get('command', part.command))}", ""]
        lines.append(_md(_provenance_line(s["provenance"], entry)))
    return "\n".join(lines) + "\n"


def _provenance_line(p: dict, entry: dict) -> str:
    versions = p.get("versions") or {}
    keep = ("qrobust", "qrobust_commit", "jax", "tensorcircuit-ng", "python")
    v = ", ".join(f"{k} {versions[k]}" for k in keep if k in versions)
    resumed = f" over {entry['interrupted'] + 1} calls (resumed)" if entry.get("interrupted") else ""
    c = entry.get("compiles")
    compiled = (f"; compiled {c['compiled']} programs ({c['seconds']:.0f} s tracing, lowering and compiling), "
                f"{c['from_cache']} read from the compilation cache" if isinstance(c, dict) else "")
    r = entry.get("replicas")
    reused = (f"; {r['trained']} replicas trained, {r['reused']} read back from the store of trained replicas"
              if isinstance(r, dict) and "trained" in r and "reused" in r else "")
    if reused and isinstance(r.get("trained_epochs"), int) and isinstance(r.get("reused_epochs"), int):
        reused += f" ({r['trained_epochs']:,} and {r['reused_epochs']:,} replica-epochs)"
    return (f"Provenance: seeds {p.get('seeds')}; simulators {p.get('simulators')}; devices {p.get('devices')}; "
            f"{v}; wall time {entry.get('seconds', float('nan')):.0f} s{resumed}, its chunks trained for "
            f"{p.get('chunk_seconds', 0):.0f} s{compiled}{reused}; started {p.get('created')}.")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.holds { background: #d9f2d9; font-weight: bold; }
td.departs { background: #f8d7d7; font-weight: bold; }
td.indeterminate { background: #dde7f5; font-style: italic; font-weight: bold; border: 2px dashed #6d8fc4; }
td.undefined, td.not-run { background: #eee; }
td.interval { font-size: 0.9em; }
.generic { font-size: 0.85em; color: #7a4b00; font-style: italic; }
td.damaged { background: #fbe5b6; font-weight: bold; }
td.paper { font-size: 0.9em; color: #444; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 1px 4px; }
.provenance { font-size: 0.8em; color: #555; }
"""

# counts the figures the browser decoded (a check for the reader, and for the headless-browser test)
_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-decoded', decoded + '/' + images.length);
  document.getElementById('decoded').textContent = decoded + ' of ' + images.length + ' figures shown.';
});
"""


def _verdict_table_html(verdicts) -> str:
    also = _also(verdicts)
    rows = []
    for v in verdicts:
        generic = f"<div class=\"generic\">{html.escape(v.generic)}</div>" if v.generic else ""
        rows.append(f"<tr><td>{html.escape(v.claim)}{generic}</td><td>{html.escape(v.rule)}</td>"
                    f"<td>{html.escape(v.measured)}</td><td class=\"interval\">{html.escape(v.interval or '-')}</td>"
                    f"<td class=\"{html.escape(v.verdict.replace(' ', '-'))}\">{html.escape(v.verdict)}</td>"
                    f"<td class=\"paper\">{html.escape(v.paper or '-')}</td>"
                    + (f"<td class=\"also\">{html.escape(v.also_passed_by or '-')}</td>" if also else "") + "</tr>")
    return ("<table><tr><th>claim</th><th>rule</th><th>measured</th>"
            f"<th>{claims.LEVEL:.0%} interval</th><th>verdict</th><th>the paper's own numbers</th>"
            + (f"<th>{html.escape(_ALSO)}</th>" if also else "") + f"</tr>{''.join(rows)}</table>")


def to_html(report: dict) -> str:
    rec = report["record"]
    counts = pd.Series([v.verdict for v in report["verdicts"]]).value_counts().to_dict()
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    body = ["<h1>Does the paper hold? qrobust's reproduction of arXiv:2508.02422</h1>",
            f"<p>Profile <b>{html.escape(str(rec.get('profile')))}</b>; {html.escape(_times(report))}; "
            f"{html.escape(summary)}. <span id=\"decoded\"></span></p>",
            f"<p>{html.escape(_METHOD)}</p>",
            "<h2>Verdicts</h2>", _verdict_table_html(report["verdicts"])]
    for s in report["sections"]:
        part = s["part"]
        body.append(f"<h2>{html.escape(part.title)}</h2>")
        for fig in s["figures"]:
            data = base64.b64encode(Path(fig).read_bytes()).decode()
            body.append(f"<img alt=\"{html.escape(Path(fig).name)}\" src=\"data:image/png;base64,{data}\">")
        if s["verdicts"]:
            body.append(_verdict_table_html(s["verdicts"]))
        for title, table in s.get("tables", []):
            body.append(f"<p><b>{html.escape(title)}</b></p>" + _table_html(table))
        entry = rec.get("parts", {}).get(part.name, {})
        body.append(f"<p>Reproduce: <code>{html.escape(entry.get('command', part.command))}</code></p>")
        body.append(f"<p class=\"provenance\">{html.escape(_provenance_line(s['provenance'], entry))}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>qrobust: reproduction report</title>"
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_report(out: str | Path) -> tuple[Path, Path, dict]:
    """Write ``out/report.md`` and ``out/report.html``; returns their paths and the report."""
    report = build(out)
    md, page = Path(out) / "report.md", Path(out) / "report.html"
    atomic_write_text(md, to_markdown(report))
    atomic_write_text(page, to_html(report))
    return md, page, report
