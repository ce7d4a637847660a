"""Finding the flipped labels without being told where they are.

Detectors, per alpha and seed (label flipping, the sweep's keys, so the poisoned
sets are the sweep's):
- ``qnn_margin`` / ``mlp_margin``: the trained model's final margin against the
  label trained on (flagged: prediction != label);
- ``qnn_aum`` / ``mlp_aum``: the area under the margin over training epochs
  (flagged: negative);
- ``cleanlab_logreg`` / ``cleanlab_mlp`` (needs the optional ``cleanlab``):
  ``cleanlab.filter.find_label_issues`` on out-of-sample predicted probabilities
  from K-fold cross-validation (stratified folds, shuffled with the seed) of a
  logistic regression on the classical inputs, and of the MLP (each fold a
  replica of one program, trained on the other folds); ranked by
  1 - p(label trained on).
Every detector is scored against the true mask: AUROC, AUPRC, precision at
k = number flipped, and precision and recall of what it flags.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qrobust.analysis.detection import detection_metrics, margin_scores
from qrobust.corruption import CORRUPTIONS, LABEL_FLIPS, check_alpha, check_feasible
from qrobust.data.encoding import classical_view
from qrobust import options
from qrobust.errors import ConfigError
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, run_chunks
from qrobust.experiments.settings import check_name
from qrobust.experiments.study import StudyConfig
from qrobust.options import option

log = logging.getLogger("qrobust")

@dataclass(frozen=True)
class DetectConfig(StudyConfig):
    """A detection study (the shared fields: ``StudyConfig``): alphas x seeds of one label-flipping
    ``corruption`` (the paper's random "flip", or an aimed one: ``qrobust.corruption.LABEL_FLIPS``); epochs
    overrides the paper's; folds and baselines: the cross-validated cleanlab baselines."""

    corruption: str = option("flip", group="grid", choices=LABEL_FLIPS,
                             help="the label flips to find: the paper's random ones, or an aimed poisoner's")
    seeds: tuple[int, ...] = option((0, 1, 2), group="grid", parse=options.seeds, metavar="N|LIST|A:B",
                                    help="a count of seeds (from --seed-offset), a list 3,7,9 or a range 10:14")
    alphas: tuple[float, ...] = option((0.1, 0.2, 0.3, 0.4, 0.5), group="grid", parse=lambda t: options.floats(
        t, "--alphas"), help="label-flipping ratios: START:STOP:STEP or a comma list")
    epochs: int | None = option(None, group="training", parse=options.number(int, "--epochs"),
                                help="override the paper's epochs")
    folds: int = option(5, group="grid", parse=options.number(int, "--folds"),
                        help="cross-validation folds of the cleanlab baselines")
    baselines: bool = option(True, flag="--no-baselines", switch=True, group="grid",
                             help="skip the cleanlab baselines")

    def validate(self) -> "DetectConfig":
        self.validate_common()
        check_name("label-flipping corruption", self.corruption, LABEL_FLIPS)
        study.check_axis("alpha", self.alphas)
        for a in self.alphas:
            check_alpha(a)
            if a == 0:
                raise ConfigError("alpha = 0 flips no label: there is nothing to detect")
        if self.folds < 2:
            raise ConfigError(f"cross-validation needs at least 2 folds, got {self.folds}")
        options.check_sizes(self, "epochs", "folds")
        for m in set(self.models) | {"mlp"}:  # the epochs (and the rest) of each program, before any data is loaded
            self.settings_of(m, epochs=self.epochs)
        study.check_table_size(len(self.alphas) * len(self.seeds) * (len(self.models) + self.folds),
                               "these alphas, seeds and folds")
        return self


def _cleanlab():
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        return None
    return find_label_issues


def run_detection(config: DetectConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """One row per detector x alpha x seed with its scores against the true mask."""
    config, dataset = study.start(config)
    n = len(dataset.y_train)
    counts = {a: check_feasible(config.corruption, a, dataset.y_train) for a in config.alphas}
    for a, count in counts.items():
        if count == 0:
            raise ConfigError(f"{config.corruption} at alpha={a} flips no label of the {n} training samples: there is "
                              "nothing to detect; ask for a larger alpha or more training samples")
    find_issues = _cleanlab() if config.baselines else None
    if config.baselines and find_issues is None:
        log.warning("cleanlab is not installed (pip install 'qrobust[cleanlab]'): baselines skipped")
    # the cross-validated baseline "mlp_cv" is the MLP with the sweep's settings, one replica per fold
    bar = Progress(None, progress, name="detection")
    programs = {p: study.build_program(config, p, m, config.settings_of(m, epochs=config.epochs), dataset, out=out,
                                       progress=bar.hook, record_margins=True)
                for p, m in [(m, m) for m in config.models] + [("mlp_cv", "mlp")]}
    store = study.open_store(out, config.recorded(), programs, "detection", claiming=config.claiming())
    grid = pd.DataFrame(list(itertools.product(config.alphas, config.seeds)), columns=["alpha", "seed"])

    def folds_of(seed):
        """Stratified fold index per sample, shuffled with the seed."""
        rng = np.random.default_rng(seed)
        fold = np.empty(n, int)
        for cls in (0, 1):
            idx = np.flatnonzero(dataset.y_train == cls)
            fold[rng.permutation(idx)] = np.arange(len(idx)) % config.folds
        return fold

    table = pd.concat([grid.assign(program=m) for m in config.models]
                      + ([grid.assign(program="mlp_cv").loc[grid.index.repeat(config.folds)]
                          .assign(fold=np.tile(np.arange(config.folds), len(grid))).reset_index(drop=True)]
                         if find_issues is not None else []), ignore_index=True)
    if "fold" not in table:
        table["fold"] = -1
    table["fold"] = table.fold.fillna(-1).astype(int)
    # the footprint of the program streaming all N samples (the most a fold streams): the one that runs but
    # for the cross-validated MLP
    chunks = study.plan(config, store, table, programs, legacy=50)
    # a poisoner that ranks by a clean reference model ("boundary"): one per model (its first program), first
    first = {programs[p].model: p for p in reversed(programs)}
    references = {m: poisoners.plan_references(config, programs[p], config.seeds, store)
                  for m, p in first.items() if poisoners.needs_references([config.corruption])}
    todo = [c for c in chunks + sum(references.values(), []) if store is None or not store.has_chunk(c.name)]
    bar.start(sum(programs[c.program].epochs * len(c.rows) for c in todo))
    scores = {m: poisoners.Priorities(dataset, poisoners.run_references(
        references[m], programs[p], programs[p].settings.learning_rate, store, bar) if m in references else None)
        for m, p in first.items()}
    priorities = {p: scores[program.model] for p, program in programs.items()}

    def run(chunk):
        rows, k = chunk.padded, len(chunk.rows)
        p = programs[chunk.program]
        n_flip = np.array([counts[a] for a in rows.alpha], np.int32)
        stream = (np.stack([folds_of(sd) != f for sd, f in zip(rows.seed, rows.fold)])
                  if chunk.program == "mlp_cv" else None)
        params, metrics, data = p.train(rows.seed.to_numpy(), np.full(len(rows), CORRUPTIONS.index(config.corruption)),
                                        n_flip, priorities[chunk.program].rows([config.corruption] * len(rows), rows.seed),
                                        stream=stream)
        margins = np.asarray(metrics["margin"])[:k]  # (R, epochs, N)
        frame = chunk.rows.drop(columns="program").copy()
        arrays = {"margins": margins.astype(np.float32), "mask": np.asarray(data.corrupted)[:k],
                  "labels": np.asarray(data.y)[:k], **study.weights(params, k, config.keeps_weights(p.model))}
        return frame, arrays

    done = run_chunks(chunks, run, store, bar)
    bar.close()
    rows = []
    cv_logit = {}  # (alpha, seed) -> out-of-sample logits of the MLP (N,)
    truth = {}  # (alpha, seed) -> (labels trained on, corruption mask)
    for chunk in chunks:
        arr = done.arrays[chunk.name]
        for i, r in enumerate(done.frames[chunk.name].itertuples(index=False)):
            if chunk.program == "mlp_cv":
                held = folds_of(r.seed) == r.fold
                final_margin = arr["margins"][i, -1]
                logit = final_margin * (2 * arr["labels"][i] - 1)
                cv_logit.setdefault((r.alpha, r.seed), np.zeros(n))[held] = logit[held]
                continue
            scores = margin_scores(arr["margins"][i])
            for name, score in scores.items():
                rows.append(dict(detector=f"{chunk.program}_{name}", alpha=r.alpha, seed=r.seed,
                                 **detection_metrics(score, arr["mask"][i], flagged=score > 0)))
            truth[(r.alpha, r.seed)] = (arr["labels"][i], arr["mask"][i])
    if find_issues is not None:
        for (alpha, seed), (labels, mask) in truth.items():
            logreg = _logreg_probs(dataset, labels, folds_of(seed))
            p1 = 1 / (1 + np.exp(-cv_logit[(alpha, seed)]))
            for name, probs in (("cleanlab_logreg", logreg), ("cleanlab_mlp", np.stack([1 - p1, p1], 1))):
                rows.append(_cleanlab_row(name, alpha, seed, labels, mask, probs, find_issues))
    result = pd.DataFrame(rows).sort_values(["detector", "alpha", "seed"]).reset_index(drop=True)
    if store is not None and store.writer:
        store.write_table("detection.csv", result)
    return result


def _logreg_probs(dataset, labels, folds) -> np.ndarray:
    """Out-of-sample p(class) (N, 2) of a logistic regression, K-fold on the given folds."""
    from sklearn.linear_model import LogisticRegression

    xs = classical_view(dataset.x_train)
    probs = np.zeros((len(labels), 2))
    for f in np.unique(folds):
        test = folds == f
        clf = LogisticRegression(max_iter=2000).fit(xs[~test], labels[~test])
        probs[test] = clf.predict_proba(xs[test])
    return probs


def _cleanlab_row(name, alpha, seed, labels, mask, probs, find_issues) -> dict:
    labels = np.asarray(labels).astype(int)
    flagged = find_issues(labels=labels, pred_probs=probs, n_jobs=1)  # no forking under JAX's threads
    score = 1 - probs[np.arange(len(labels)), labels]
    return dict(detector=name, alpha=alpha, seed=seed, **detection_metrics(score, mask, flagged=flagged))
