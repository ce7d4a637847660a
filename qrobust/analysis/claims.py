"""The paper's claims, each judged from the data by a stated rule.

Every judge is a pure function of a study's tables and returns a ``Verdict``: the claim in the paper's words,
the rule applied (thresholds fixed here, before any data is seen, and printed beside the result; the one rule
revised after a run, the gauge rule, says so and why in its docstring), the measured quantity, its 95% interval,
and a verdict. The thresholds are deliberately plain; a reader who prefers others has every number in the tables.

Verdicts, and the interval they are read from (three-valued reading, added 2026-12-06). A referee pointed out
that knife-edge verdicts carried no interval (the XXZ MLP's lowest training accuracy, 0.954 against a 0.95
threshold, "held"; the paper's 0.939 "departed"), so each verdict now reads the interval of the quantity its rule
compares with a threshold, not only its value:

- the quantity: computed from each replica's final row (``qrobust.analysis.summary.final_epoch``; diverged
  replicas left out, as before) as the mean over seeds (a seed's rows first averaged over any other axis, e.g.
  learning rate), the number the rule read before;
- its interval: a percentile bootstrap over seeds, ``N_BOOT`` = 1000 resamples at ``LEVEL`` = 95%. A resample
  draws the table's seeds with replacement and keeps all of a seed's rows together (every alpha, corruption,
  model and unlearning method: one seed's runs share their data draw, initialisation and batch order), so the
  components of a rule are read on the same resamples. The draws come from ``np.random.default_rng(RNG_SEED)``:
  the same table gives the same intervals, in every report. The interval is widened where needed to contain the
  point value; it is undefined where the quantity is NaN in more than a tenth of the resamples. The paper's
  published numbers (five runs per point, ``qrobust.paper``) are resampled the same way, their ``run`` taken as
  the seed. The critical point reads the interval ``qrobust.analysis.critical`` computes (a profile likelihood
  on the realised flip fraction, widened by a jackknife over seeds and by the grid: its docstring).
  With few seeds (two to four) a percentile bootstrap is narrower than the true uncertainty: there an interval
  that clears a threshold is weaker evidence than it looks;
- the verdict: **holds** when the whole interval lies on the holding side of the rule's threshold, **departs**
  when the whole interval lies on the other side, **indeterminate** when it straddles the threshold;
  **undefined** when the quantity is NaN (a NaN never becomes a verdict); **not run** when the tables it needs
  are missing. A rule of several parts (A and B) judges each part so: it holds when every part holds, departs
  when any part departs, is undefined when no part departs and one is undefined, else indeterminate;
- one run: with a single seed (or a single published run per point) there is nothing to resample; the verdict
  is read from the point value, as before, and the interval reads "- (no interval: 1 run)", so a reader sees that
  no uncertainty was measured.

The thresholds were not changed: the three-valued reading changes a verdict only where the interval straddles a
threshold (holds or departs becomes indeterminate), and where the unlearning rule finds nothing to regain
(``unlearning_claims``). One more change, of the same kind: a point (an alpha of a curve) whose every replica
diverged is now NaN in the rule's quantity, so the rule is undefined; before, the mean's NaN was skipped and the
rule read the remaining alphas.

Generic rules (``Verdict.generic``). With class-balanced flips the label majority at every input is the clean label
for alpha < 0.5 and the flipped one above: a learner that does not memorise, that fits the majority, therefore
(a) tracks 1 - alpha in training accuracy against the flipped labels ("refuses" them), (b) keeps its clean
validation accuracy below 0.5 (the plateau: the majority rule below 0.5 is the clean rule), (c) has its
memorisation step from 0 to 1 at alpha = 0.5 (the "phase transition") and (d) learns the inverted rule above it.
The referee named (a), (c) and (d); (b) is the same fact read on the validation set, so it is marked too.
These four QNN rules are passed by any such learner; no control is required to fail them, so they are evidence
that the QNN does not memorise, not that it does anything a classical non-memorising model does not. They say so,
and ``controls_passing`` applies them to every other model of a results table (the controls of
``qrobust.models.controls``): the report lists the controls that pass them too. The MLP's rules (it memorises;
its validation falls linearly) fail for a non-memorising learner by construction; the features rule, the
unlearning, landscape, gauge, capacity and scorecard rules compare models or read quantities the majority
argument does not fix, so none of them is marked.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from qrobust.analysis.controls import REFERENCE  # the paper's models; every other model is a control
from qrobust.analysis.critical import undecided
from qrobust.analysis.intervals import (DEFINED, LEVEL, N_BOOT, ONE_RUN, RNG_SEED, Boot as _Boot,  # noqa: F401
                                       Part as _Part, decide as _decide, interval_text as _interval_text,
                                       judge as _judge, part as _part)
from qrobust.analysis.summary import final_epoch, final_summary

GENERIC = ("generic: any learner that does not memorise passes this rule (class-balanced flips invert the label "
           "majority at alpha = 0.5)")


class Verdict(NamedTuple):
    claim: str      # the paper's finding (or qrobust's, marked)
    rule: str       # how it is judged
    measured: str   # the quantity the rule reads, as measured (the point value: the mean over seeds)
    verdict: str    # holds, departs, indeterminate, undefined, not run (the report adds damaged)
    part: str       # the reproduction part it comes from
    paper: str = ""  # the same rule on the paper's published numbers ("VERDICT: measured; 95% interval: ...";
    #                  "" not applied)
    interval: str = ""  # the 95% interval of each quantity compared with a threshold ("min train acc [0.941,
    #                     0.962]"), ONE_RUN without one, "-" when not run or undefined
    generic: str = ""   # a note where any non-memorising learner passes the rule (module docstring), else ""
    also_passed_by: str = ""  # generic rules, where the table has controls: those that pass it too ("linear,
    #                           quadratic"; "none of linear, quadratic"), else ""


def _judged(rule, args: tuple, errors: tuple) -> tuple[str, str, str]:
    """(measured, verdict, interval) of ``rule(*args)``; "not run" where a table it needs is missing
    (``errors``)."""
    try:
        return rule(*args)
    except errors:
        return "-", "not run", "-"


def _on_published(rule, args: tuple | None, errors: tuple) -> str:
    """``Verdict.paper``: the rule on the paper's published numbers ("" when none were given; "not published"
    when they lack what the rule reads)."""
    if args is None:
        return ""
    measured, verdict, interval = _judged(rule, args, errors)
    return "not published" if verdict == "not run" else f"{verdict}: {measured}; 95% interval: {interval}"


# --- Fig. 2: the noise response -------------------------------------------------------------------------------


class _Curves:
    """A noise sweep's final accuracies per model x corruption x alpha, over the resamples of its seeds:
    ``curves(model, corruption, column)`` is (alphas, values[resample, alpha]), the point value (the mean over
    every seed) in row 0."""

    def __init__(self, final: pd.DataFrame, seed: str = "seed"):
        self.final, self.seed = final, seed
        self.boot = _Boot(final[seed])
        self._means: dict[str, pd.DataFrame] = {}

    def __call__(self, model: str, corruption: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        if column not in self._means:
            self._means[column] = self.boot.means(self.final, ["model", "corruption", "alpha"], column, self.seed)
        curve = self._means[column].loc[(model, corruption)].sort_index()  # KeyError where not run
        if curve.empty:
            raise KeyError(f"no {model} {corruption} rows")
        return curve.index.to_numpy(float), curve.to_numpy(float).T


METRICS = ("train_acc", "train_acc_clean", "val_acc", "memorization")


def _replicas(results: pd.DataFrame) -> _Curves:
    """Each replica's final row (``final_epoch``), diverged replicas left out of every mean (their metrics NaN:
    a point whose every replica diverged stays, NaN, and a rule reading it is undefined)."""
    final = final_epoch(results)
    if "diverged" in final:
        gone = final.diverged.astype(bool).to_numpy()
        final = final.assign(**{c: final[c].where(~gone) for c in METRICS if c in final})
    return _Curves(final)


def _published_curves(published: pd.DataFrame) -> _Curves:
    """The paper's published final accuracies, its runs resampled as seeds."""
    return _Curves(published if "run" in published else published.assign(run=0), seed="run")


def published_summary(published: pd.DataFrame) -> pd.DataFrame:
    """A summary (``final_summary``'s columns the noise rules read) of the paper's published final accuracies
    (``qrobust.paper.published_noise``): mean over its runs per model x corruption x alpha."""
    return published.groupby(["model", "corruption", "alpha"], as_index=False).agg(
        train_acc_mean=("train_acc", "mean"), val_acc_mean=("val_acc", "mean"))


def _mlp_memorises(d: _Curves, _):
    _, train = d("mlp", "flip", "train_acc")
    low = train.min(axis=1)
    return f"min train acc {low[0]:.3f}", *_decide([_part("min train acc", low, ">=", 0.95)])


def _mlp_linear(d: _Curves, _):
    alpha, val = d("mlp", "flip", "val_acc")
    x = alpha - alpha.mean()
    y = val - val.mean(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        r = (y @ x) / np.sqrt((y ** 2).sum(axis=1) * (x ** 2).sum())
    drop = val[:, 0] - val[:, -1]
    return (f"r = {r[0]:.3f}, drop {drop[0]:.3f}",
            *_decide([_part("r", r, "<=", -0.9), _part("drop", drop, ">=", 0.3)]))


def _refuses(d: _Curves, _, model: str = "qnn"):
    alpha, train = d(model, "flip", "train_acc")
    below = alpha < 0.5
    gap = np.max(np.abs(train[:, below] - (1 - alpha[below])), axis=1)  # ValueError: no alpha below 0.5
    return (f"max |train - (1 - alpha)| = {gap[0]:.3f}",
            *_decide([_part("max |train - (1 - alpha)|", gap, "<=", 0.1)]))


def _plateau(d: _Curves, _, model: str = "qnn"):
    alpha, val = d(model, "flip", "val_acc")
    low = np.min(val[:, alpha < 0.5], axis=1)
    fall = val[:, 0] - low
    return (f"val {val[0, 0]:.3f} at alpha 0, lowest {low[0]:.3f} below 0.5",
            *_decide([_part("val(0) - lowest", fall, "<=", 0.05)]))


def _critical_point(_, crit: pd.DataFrame | None, model: str = "qnn"):
    """The memorisation step of ``qrobust.analysis.critical`` and the interval that module computes.
    No step in the point fit (M does not cross 1/2, or not sharply): departs; a critical point left undefined
    for want of seeds, or NaN: undefined."""
    if crit is None:
        raise KeyError("no critical points")
    row = crit[(crit.model == model) & (crit.corruption == "flip")].iloc[0]
    a, lo, hi = (float(row[c]) for c in ("alpha_c_memorization", "alpha_c_memorization_lo",
                                         "alpha_c_memorization_hi"))
    transition = row.transition
    reason = "" if pd.isna(row.get("reason", "")) else str(row.get("reason", ""))
    shown = "NaN" if pd.isna(transition) else bool(transition)
    measured = (f"alpha_c = {a:.3f} [{lo:.3f}, {hi:.3f}], transition {shown}" if np.isfinite(a)
                else f"no alpha_c, transition {shown}")
    if pd.isna(transition) or (not bool(transition) and undecided(reason)):
        return measured + (f" ({reason})" if reason else ""), "undefined", "-"
    if not bool(transition):
        return measured + (f" ({reason})" if reason else ""), "departs", "alpha_c - (no sharp step in the point fit)"
    runs = row.get("n_seeds", np.nan)
    if not pd.isna(runs) and int(runs) < 2:
        p = _Part("alpha_c", a, None, None, "within", (0.4, 0.6), "1 run")
    elif not np.isfinite([lo, hi]).all():
        p = _Part("alpha_c", a, None, None, "within", (0.4, 0.6), "the fit gave none")
    else:
        p = _Part("alpha_c", a, lo, hi, "within", (0.4, 0.6))
    return measured, *_decide([p])


def _inverted(d: _Curves, _, model: str = "qnn"):
    alpha, val = d(model, "flip", "val_acc")
    _, train = d(model, "flip", "train_acc")
    i = int(np.argmax(alpha))
    a = alpha[i]
    if a < 0.8:
        return "largest alpha below 0.8", "undefined", "-"
    return (f"at alpha {a:g}: val {val[0, i]:.3f}, train {train[0, i]:.3f}",
            *_decide([_part("val", val[:, i], "<=", 0.2), _part("train acc", train[:, i], ">=", 0.8)]))


def _features_milder(d: _Curves, _):
    parts, texts = [], []
    for model in ("qnn", "mlp"):
        losses = {}
        for c in ("flip", "features"):
            _, val = d(model, c, "val_acc")
            losses[c] = np.mean(val[:, :1] - val, axis=1)
        texts.append(f"{model.upper()} {losses['features'][0]:.3f} vs {losses['flip'][0]:.3f}")
        parts.append(_part(f"{model.upper()} features - flip / 2", losses["features"] - 0.5 * losses["flip"],
                           "<=", 0.0))
    return "mean val loss, features vs flip: " + "; ".join(texts), *_decide(parts)


class _Rule(NamedTuple):
    claim: str
    rule: str
    judge: Callable   # judge(curves, critical[, model]) -> (measured, verdict, interval)
    generic: bool = False  # a QNN rule any non-memorising learner passes: judge takes ``model``


NOISE_RULES = (
    _Rule("the MLP reaches training accuracy 1 at every alpha (it memorises the flipped labels)",
          "MLP, label flipping: min over alpha of training accuracy >= 0.95", _mlp_memorises),
    _Rule("the MLP's validation accuracy falls roughly linearly with alpha",
          "MLP, flip: Pearson r(alpha, val) <= -0.9 and val(0) - val(max alpha) >= 0.3", _mlp_linear),
    _Rule("the QNN's training accuracy tracks 1 - alpha below alpha ~ 0.5 (it refuses the flipped labels)",
          "QNN, flip: max over alpha < 0.5 of |train acc - (1 - alpha)| <= 0.1", _refuses, True),
    _Rule("the QNN's validation accuracy holds a plateau below alpha ~ 0.5",
          "QNN, flip: val(0) - min over alpha < 0.5 of val <= 0.05", _plateau, True),
    _Rule("near alpha ~ 0.5 the QNN changes qualitatively, like a phase transition",
          "QNN, flip: a sharp memorisation step found, alpha_c within [0.4, 0.6]", _critical_point, True),
    _Rule("beyond it the QNN learns the inverted rule",
          "QNN, flip, at the largest alpha (>= 0.8): val <= 0.2 and train acc >= 0.8", _inverted, True),
    _Rule("feature randomisation hurts both models far less than label flipping",
          "each model: mean over alpha of val(0) - val(alpha) under features <= half that under flipping",
          _features_milder),
)
_NOISE_ERRORS = (KeyError, ValueError, IndexError)


def _controls(results: pd.DataFrame) -> list[str]:
    """The models of a results table other than the paper's (``REFERENCE``), in the table's order."""
    return [m for m in dict.fromkeys(results.model) if m not in REFERENCE] if "model" in results else []


def _control_verdicts(curves: _Curves, critical: pd.DataFrame | None, controls: list[str]) -> dict[str, dict]:
    """For each generic rule's claim: each control's verdict under that rule, the control in the QNN's place."""
    return {r.claim: {m: _judged(partial(r.judge, model=m), (curves, critical), _NOISE_ERRORS)[1]
                      for m in controls} for r in NOISE_RULES if r.generic}


def controls_passing(results: pd.DataFrame, critical: pd.DataFrame | None) -> dict[str, list[str]]:
    """For each generic rule (``NOISE_RULES``, module docstring), keyed by its claim: the models of ``results``
    other than "qnn" and "mlp" (the controls) that pass it ("holds"), each judged by the QNN's rule with the
    control in the QNN's place (``critical``: the sweep's critical points; None: the critical-point rule is not
    run, and passed by none)."""
    every = _control_verdicts(_replicas(results), critical, _controls(results))
    return {claim: [m for m, v in per.items() if v == "holds"] for claim, per in every.items()}


def _also(per: dict[str, str]) -> str:
    passing = [m for m, v in per.items() if v == "holds"]
    return ", ".join(passing) if passing else "none of " + ", ".join(per)


def noise_claims(results: pd.DataFrame, critical: pd.DataFrame | None, part: str, data: str,
                 published: pd.DataFrame | None = None) -> list[Verdict]:
    """The findings of Fig. 2 from a sweep's results (models qnn and mlp, corruptions flip and features)
    and its critical points (``qrobust.analysis.critical.critical_points``). With ``published`` (the paper's
    own final accuracies for this dataset, ``qrobust.paper.published_noise``), each rule is applied to those
    numbers too (``Verdict.paper``); the critical point needs the memorisation, which the paper did not
    publish. The generic rules carry ``GENERIC``; where ``results`` holds other models (controls), each generic
    rule is applied to each of them too (``Verdict.also_passed_by``)."""
    ours = _replicas(results)
    theirs = None if published is None else _published_curves(published)
    controls = _controls(results)
    by_control = _control_verdicts(ours, critical, controls) if controls else {}
    out = []
    for r in NOISE_RULES:
        judge = partial(r.judge, model="qnn") if r.generic else r.judge
        measured, verdict, interval = _judged(judge, (ours, critical), _NOISE_ERRORS)
        paper = _on_published(judge, None if theirs is None else (theirs, None), _NOISE_ERRORS)
        out.append(Verdict(f"{data}: {r.claim}", r.rule, measured, verdict, part, paper, interval,
                           GENERIC if r.generic else "", _also(by_control[r.claim]) if r.claim in by_control else ""))
    return out


DEVICE_LEARNS_MARGIN = 0.10  # the controls' LEARNS_MARGIN: a setting more than this below exact has lost the task


def _learns_task(d: _Curves, _, floor: float):
    alpha, val = d("qnn", "flip", "val_acc")
    if not len(alpha) or alpha[0] != 0:
        return "no alpha 0", "undefined", "-"
    return (f"val at alpha 0: {val[0, 0]:.3f}, the exact QNN's less {DEVICE_LEARNS_MARGIN:g}: {floor:.3f}",
            *_decide([_part("val(0)", val[:, 0], ">=", floor)]))


def device_claims(results: pd.DataFrame, critical: pd.DataFrame | None, part: str, data: str) -> list[Verdict]:
    """Does the QNN's resilience survive a device (issue 34)? The paper's QNN rules (the generic rules of
    ``NOISE_RULES``, the very rules that judge it exactly, fixed before any device run) at each (shots, noise)
    setting of a device study, that setting's QNN in the QNN's place (``qrobust.analysis.device``). Before them,
    at each setting but exact, qrobust's "the QNN still learns the clean task" (validation accuracy at alpha 0 no
    more than ``DEVICE_LEARNS_MARGIN`` below the exact QNN's point value): a QNN that has lost the task passes the
    plateau rule trivially, so that rule reads nothing without it. It was added after the first smoke run of the
    study (24 MNIST images, 3 epochs: a QNN at chance "held" its plateau), before any run at the paper's settings."""
    from qrobust.analysis.device import label, setting_critical, setting_results, settings

    out, exact = [], None
    if (np.inf, "none") in settings(results):
        _, val = _replicas(setting_results(results, np.inf, "none"))("qnn", "flip", "val_acc")
        exact = float(val[0, 0])
    for shots, noise in settings(results):
        ours = _replicas(setting_results(results, shots, noise))
        crit = setting_critical(critical, shots, noise)
        if exact is not None and (shots, noise) != (np.inf, "none"):
            floor = exact - DEVICE_LEARNS_MARGIN
            measured, verdict, interval = _judged(partial(_learns_task, floor=floor), (ours, crit), _NOISE_ERRORS)
            out.append(Verdict(f"{data} at {label(shots, noise)}: the QNN still learns the clean task (qrobust's)",
                               f"QNN, flip: val at alpha 0 >= the exact QNN's - {DEVICE_LEARNS_MARGIN:g}", measured,
                               verdict, part, "", interval))
        for r in (r for r in NOISE_RULES if r.generic):
            measured, verdict, interval = _judged(partial(r.judge, model="qnn"), (ours, crit), _NOISE_ERRORS)
            out.append(Verdict(f"{data} at {label(shots, noise)}: {r.claim}", r.rule, measured, verdict, part,
                               "", interval, GENERIC))
    return out


# --- against the strongest attacker (qrobust's, issue 35) ---------------------------------------------------------


ATTACK_PLATEAU_FALL = 0.05  # the plateau rule's tolerance (``_plateau``), unchanged for the attacks
ATTACK_MARGIN = 0.0  # an attack "does more damage" when its excess over random flips is above 0 (interval and all)


def _attacks_of(results: pd.DataFrame) -> list[str]:
    """The corruptions of ``results`` other than random flips, in the table's order."""
    return [c for c in dict.fromkeys(results.corruption) if c != "flip"]


def _survives(means, model: str, attacks: list[str]):
    from qrobust.analysis.attack import plateau_falls

    falls = plateau_falls(means, model, attacks)  # (resamples, attacks)
    worst = np.nanmax(falls, axis=1) if np.isfinite(falls).any() else falls[:, 0]
    strongest = attacks[int(np.nanargmax(falls[0]))] if np.isfinite(falls[0]).any() else "-"
    each = ", ".join(f"{a} {f:.3f}" for a, f in zip(attacks, falls[0]))
    return (f"largest fall {worst[0]:.3f} ({strongest}); {each}",
            *_decide([_part("largest fall", worst, "<=", ATTACK_PLATEAU_FALL)]))


def _stronger(means, model: str, attacks: list[str]):
    from qrobust.analysis.attack import excess_damage

    excess = np.stack([excess_damage(means, model, a) for a in attacks], axis=1)
    best = np.nanmax(excess, axis=1)
    return (", ".join(f"{a} {e:+.3f}" for a, e in zip(attacks, excess[0])),
            *_decide([_part("largest excess", best, ">", ATTACK_MARGIN)]))


def attack_claims(results: pd.DataFrame, part: str, data: str) -> list[Verdict]:
    """The attack study's verdicts, per model of ``results`` (the QNN first), rules fixed before any run:

    - "its validation plateau below alpha 0.5 survives the strongest attack": the plateau rule (val(0) - min over
      0 < alpha < 0.5 of val <= 0.05) with, in each bootstrap resample of the seeds, the attack whose fall is
      largest (every corruption of the run but random flips);
    - "the strongest attack does more damage than random flips": the largest over attacks of the mean over
      0 < alpha < 0.5 of val_flip - val_attack is above 0 (interval and all; else indeterminate or departs).
    """
    from qrobust.analysis.attack import curves

    means, _ = curves(results)
    attacks = _attacks_of(results)
    models = sorted(dict.fromkeys(results.model), key=lambda m: (m != "qnn", m != "mlp"))
    out = []
    for m in models:
        for claim, rule, judge in (
                (f"the {m.upper() if m in REFERENCE else m}'s validation plateau below alpha 0.5 survives the "
                 "strongest attack",
                 f"{m}: val(0) - min over attacks and 0 < alpha < 0.5 of val <= {ATTACK_PLATEAU_FALL} (the worst "
                 "attack per resample)", _survives),
                (f"the strongest attack does more damage to the {m.upper() if m in REFERENCE else m} than random "
                 "flips", f"{m}: max over attacks of mean over 0 < alpha < 0.5 of val_flip - val_attack > 0",
                 _stronger)):
            measured, verdict, interval = _judged(judge, (means, m, attacks), _NOISE_ERRORS)
            out.append(Verdict(f"{data}: {claim}", rule, measured, verdict, part, "", interval))
    return out


def attack_verdicts(run, part: str) -> list[Verdict]:
    """The attack study's verdicts (``attack_claims``) on its results."""
    return attack_claims(run["results"], part, f"{str(run.settings.get('dataset')).upper()} (attacks)")


# --- Fig. 3: unlearning -------------------------------------------------------------------------------------------


UNLEARN_MARGIN = 0.05  # the unlearning rules' tolerance against the clean model


class _Unlearned(NamedTuple):
    """Validation accuracy after the rules' epoch per (model, method), the clean and poisoned teachers' per model,
    each over the resamples of the seeds (row 0 the point); ``clean``/``teacher`` None where not recorded."""
    val: pd.DataFrame
    clean: pd.DataFrame | None
    teacher: pd.DataFrame | None


def _study_unlearned(at: pd.DataFrame, final: pd.DataFrame) -> _Unlearned:
    at = at if "seed" in at else at.assign(seed=0)
    paired = "seed" in final
    boot = _Boot(np.concatenate([at.seed.to_numpy(), final.seed.to_numpy() if paired else []]))
    val = boot.means(at, ["model", "method"], "val_acc")

    def teacher_of(column):
        if column not in final:
            return None
        if paired:
            return boot.means(final, ["model"], column)
        mean = final.groupby("model")[column].mean()  # no seeds to pair: the mean, constant over the resamples
        return pd.DataFrame(np.repeat(mean.to_numpy(float)[:, None], boot.size, axis=1), index=mean.index)

    return _Unlearned(val, teacher_of("clean_val_acc"), teacher_of("teacher_val_acc"))


def _gap(u: _Unlearned, model: str, method: str) -> np.ndarray:
    if u.clean is None:
        raise KeyError("no clean model")
    return u.clean.loc[model].to_numpy(float) - u.val.loc[(model, method)].to_numpy(float)


def _qnn_fast(u: _Unlearned):
    """Within the margin of the clean model, and a teacher that had something to regain (module docstring of
    ``unlearning_claims``)."""
    g = {m: _gap(u, "qnn", m) for m in ("finetune", "scrub")}
    largest = np.maximum(g["finetune"], g["scrub"])
    measured = ", ".join(f"{m} {v[0]:.3f} below clean" for m, v in g.items())
    main = _part("largest gap to clean", largest, "<=", UNLEARN_MARGIN)
    if u.teacher is None:
        return measured, *_decide([main])
    lost = u.clean.loc["qnn"].to_numpy(float) - u.teacher.loc["qnn"].to_numpy(float)
    teacher = _part("the teacher's gap to clean", lost, ">", UNLEARN_MARGIN)
    measured += f"; the poisoned teacher {lost[0]:.3f} below clean"
    verdict, interval = _decide([main])
    interval = _interval_text([main, teacher])
    if verdict == "holds":
        had = _judge(teacher)
        if had == "departs":
            return measured + ": nothing to regain", "indeterminate", interval
        if had == "indeterminate":
            return measured + ": perhaps nothing to regain", "indeterminate", interval
        if had == "undefined":
            return measured, "undefined", interval
    return measured, verdict, interval


def _mlp_stubborn(u: _Unlearned):
    g = {m: _gap(u, "mlp", m) for m in ("finetune", "scrub")}
    q = {m: _gap(u, "qnn", m) for m in ("finetune", "scrub")}
    parts = [_part("smallest MLP gap to clean", np.minimum(g["finetune"], g["scrub"]), ">", UNLEARN_MARGIN),
             _part("smallest MLP - QNN gap", np.minimum(g["finetune"] - q["finetune"], g["scrub"] - q["scrub"]),
                   ">", 0.0)]
    return ", ".join(f"{m}: MLP {g[m][0]:.3f}, QNN {q[m][0]:.3f} below clean" for m in g), *_decide(parts)


def _retrain_slow(u: _Unlearned):
    parts, texts = [], []
    for m in ("qnn", "mlp"):
        r, f = u.val.loc[(m, "retrain")].to_numpy(float), u.val.loc[(m, "finetune")].to_numpy(float)
        texts.append(f"{m.upper()} retrain {r[0]:.3f} vs finetune {f[0]:.3f}")
        parts.append(_part(f"{m.upper()} finetune - retrain", f - r, ">", 0.0))
    return "; ".join(texts), *_decide(parts)


def unlearning_claims(results: pd.DataFrame, final: pd.DataFrame, part: str, data: str,
                      epoch: int = 5, published: pd.DataFrame | None = None) -> list[Verdict]:
    """Fig. 3's findings from an unlearning study: validation accuracy after ``epoch`` unlearning epochs
    (mean over seeds, diverged students left out) against the clean model's, intervals from the bootstrap over
    seeds (a seed's students, clean model and poisoned teacher resampled together). With ``published`` (the
    paper's own curves for this dataset, ``qrobust.paper.published_unlearning``: its step k is after k epochs,
    step 0 the teacher), each rule is applied to them too where they suffice (``Verdict.paper``); the paper did
    not publish its clean model's accuracy, which two of the rules need.

    "The QNN regains ..." (new reading, 2026-12-06, after the referee's note that on XXZ the poisoned teacher
    lost nothing, -0.007 below clean): the rule is kept, and its measured string also gives the poisoned
    teacher's own gap to the clean model, how much there was to regain. Where the teacher's gap is not above the
    rule's margin (0.05), a student within the margin has not shown that it regains anything: a verdict that
    would hold becomes "indeterminate" ("nothing to regain"; "perhaps nothing to regain" where the teacher's
    interval straddles the margin). A student further than the margin below clean still departs. Tables
    without the teacher's accuracy (written before it was recorded) are judged by the rule alone."""
    ok = results[~results.diverged] if "diverged" in results else results
    if "known_fraction" in ok:
        ok = ok[ok.known_fraction == ok.known_fraction.max()]
    ours = _study_unlearned(ok[ok.epoch == epoch], final)
    theirs = None
    if published is not None:
        step = published[published.step == epoch]
        step = step if "run" in step else step.assign(run=0)
        theirs = _Unlearned(_Boot(step.run).means(step, ["model", "method"], "val_acc", seed="run"), None, None)
    out = []

    def add(claim, rule, fn):
        measured, verdict, interval = _judged(fn, (ours,), (KeyError,))
        out.append(Verdict(f"{data}: {claim}", rule, measured, verdict, part,
                           _on_published(fn, None if theirs is None else (theirs,), (KeyError,)), interval))

    add("the QNN regains high validation accuracy within a few epochs of fine-tuning or SCRUB",
        f"QNN: val after {epoch} epochs of finetune and of scrub within {UNLEARN_MARGIN} of the clean model's "
        f"(indeterminate where the poisoned teacher was not more than {UNLEARN_MARGIN} below it: nothing to "
        "regain)", _qnn_fast)
    add("the MLP's memories of the flipped labels are stubborn",
        f"MLP: after {epoch} epochs, finetune and scrub more than {UNLEARN_MARGIN} below clean, and further than "
        "the QNN", _mlp_stubborn)
    add("retraining from scratch is slow for both models",
        f"each model: val after {epoch} epochs of retrain below finetune's", _retrain_slow)
    return out


# --- qrobust's own studies ----------------------------------------------------------------------------------------


def landscape_claims(table: pd.DataFrame, part: str) -> list[Verdict]:
    """The Hessian-trace ratio noisy / clean: strongly growing for the MLP, near 1 for the QNN (intervals: the
    bootstrap over seeds)."""
    noisy = table[table.alpha > 0]
    noisy = noisy if "seed" in noisy else noisy.assign(seed=0)
    means = _Boot(noisy.seed).means(noisy, ["model", "alpha"], "ratio")
    out = []
    try:
        mlp = means.loc["mlp"].sort_index().to_numpy(float).T  # (resamples, alphas)
        qnn = means.loc["qnn"].sort_index().to_numpy(float).T
        parts = [_part("MLP ratio at the largest alpha", mlp[:, -1], ">=", 10.0)]
        if mlp.shape[1] > 1:
            parts.append(_part("MLP smallest step in alpha", np.min(np.diff(mlp, axis=1), axis=1), ">", 0.0))
        verdict, interval = _decide(parts)
        out.append(Verdict("the MLP's Hessian trace grows strongly with alpha (a roughened, memorising landscape)",
                           "MLP: ratio noisy / clean >= 10 at the largest alpha and increasing in alpha",
                           ", ".join(f"{r:.1f}" for r in mlp[0]), verdict, part, "", interval))
        parts = [_part("QNN smallest ratio", qnn.min(axis=1), ">", 1 / 3),
                 _part("QNN largest ratio", qnn.max(axis=1), "<", 3.0)]
        verdict, interval = _decide(parts)
        out.append(Verdict("the QNN's Hessian trace stays near the clean model's",
                           "QNN: ratio noisy / clean within (1/3, 3) at every alpha",
                           ", ".join(f"{r:.2f}" for r in qnn[0]), verdict, part, "", interval))
    except (KeyError, IndexError, ValueError):
        out.append(Verdict("the landscape findings", "-", "-", "not run", part, "", "-"))
    return out


def gauge_claims(gauge: pd.DataFrame, part: str, results: dict[str, pd.DataFrame] | None = None) -> list[Verdict]:
    """qrobust's finding on XXZ: the QNN is blind to the global phase of the states; the MLP is not.

    ``gauge``: the gauge study's summary (gauge.csv); ``results``: each gauge's results table (per replica and
    epoch). The MLP's dependence is read from the largest spread of mean validation accuracy over gauges (> 0.05).
    The QNN's independence is read from each replica's final training loss: its largest spread over gauges must
    be at most a tenth of the MLP's. Not from accuracies: in exact arithmetic the QNN's outputs are the same under
    every gauge, but in float32 a phase e^{i phi} changes the amplitudes' rounding (about 1e-6 in the first
    epoch's loss), and training amplifies that where the validation accuracy sits on a knife edge (alpha near
    the transition, logits near 0), so one replica's accuracy can move by 0.1 with no dependence on the phase.
    (Revised 2026-12-02, after the full and quick runs: the first rule, a largest accuracy spread <= 0.01, asked
    that rounding-driven accuracies agree, and departed on a true claim. A QNN that did see the phase, e.g. one
    reading the real part of the amplitudes, moves its loss as the MLP does, and departs under this rule too.)

    Intervals (2026-12-06): the bootstrap over seeds, a seed's replicas under every gauge resampled together;
    the loss part reads the ratio of the QNN's largest spread to the MLP's (<= 1/10, the same rule). The MLP's
    accuracy spread has an interval where the results tables carry each replica's validation accuracy, else it
    is read from gauge.csv's means (no interval).
    """
    val = gauge.pivot_table(index=["model", "corruption", "alpha"], columns="gauge", values="val_acc_mean")
    spread = (val.max(axis=1) - val.min(axis=1)).groupby(level="model").max()
    loss = _final_loss_spread(results) if results else None
    try:
        if loss is None or loss.empty:
            raise KeyError("no results tables, or no finite final loss in them")
        m = float(spread.loc["mlp"])
        boot = _Boot(loss.seed)
        per_seed = {k: loss[loss.model == k].groupby("seed").spread.max().reindex(boot.seeds).to_numpy(float)
                    for k in ("qnn", "mlp")}
        if np.isnan(per_seed["qnn"]).all() or np.isnan(per_seed["mlp"]).all():
            raise KeyError("no finite losses of a model")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q_b, m_b = (np.nanmax(per_seed[k][boot.idx], axis=1) for k in ("qnn", "mlp"))
            ratio = q_b / m_b
        mlp_val = _gauge_val_spread(results, boot)
    except KeyError:
        return [Verdict("gauge", "-", "-", "not run", part, "", "-")]
    q_loss, m_loss = float(q_b[0]), float(m_b[0])
    if mlp_val is None:
        val_part = _Part("MLP val spread", m, None, None, ">", 0.05, "from gauge.csv's means")
    else:
        val_part = _part("MLP val spread", mlp_val, ">", 0.05)
        m = float(mlp_val[0])
    parts = [val_part, _part("QNN / MLP final-loss spread", ratio, "<=", 0.1)]
    verdict, interval = _decide(parts)
    if np.isnan([m, q_loss, m_loss]).any():
        verdict = "undefined"
    return [Verdict("XXZ (qrobust's finding): the QNN's results do not depend on the states' global phase, the "
                    "MLP's do", "MLP: largest spread of mean val accuracy over gauges > 0.05; QNN: largest spread "
                    "of a replica's final training loss over gauges <= 1/10 of the MLP's",
                    f"MLP val spread {m:.3f}; final-loss spread QNN {q_loss:.2g}, MLP {m_loss:.2g}", verdict,
                    part, "", interval)]


def _final_loss_spread(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per replica (model, corruption, alpha, seed): the spread over gauges of its final training loss (finite
    losses only), column ``spread``."""
    keys = ["model", "corruption", "alpha", "seed"]
    frames = []
    for g, r in results.items():
        last = r[r.epoch == r.groupby("model").epoch.transform("max")]
        frames.append(last[keys + ["loss"]].assign(gauge=g))
    table = pd.concat(frames, ignore_index=True)
    table = table[np.isfinite(table.loss)]
    loss = table.pivot_table(index=keys, columns="gauge", values="loss")
    return (loss.max(axis=1) - loss.min(axis=1)).rename("spread").reset_index()


def _gauge_val_spread(results: dict[str, pd.DataFrame], boot: _Boot) -> np.ndarray | None:
    """The MLP's largest spread over gauges of mean validation accuracy, over the resamples; None where the
    results tables lack what it needs."""
    frames = []
    for g, r in results.items():
        if not {"val_acc", "corruption", "alpha", "seed", "epoch", "model"} <= set(r):
            return None
        last = final_epoch(r)
        if "diverged" in last:
            last = last[~last.diverged.astype(bool)]
        frames.append(last[last.model == "mlp"].assign(gauge=g))
    table = pd.concat(frames, ignore_index=True)
    if table.empty:
        return None
    means = boot.means(table, ["corruption", "alpha", "gauge"], "val_acc")
    cells = means.groupby(level=["corruption", "alpha"])
    return (cells.max() - cells.min()).max(axis=0).to_numpy(float)


def capacity_claims(results: pd.DataFrame, part: str, alpha: float = 0.3) -> list[Verdict]:
    """qrobust's reading of the capacity study: every MLP size memorises more than every QNN depth, at the
    measured alpha nearest ``alpha`` (interval: the bootstrap over seeds of the smallest MLP memorisation less
    the largest QNN's)."""
    s = final_summary(results)
    s = s[s.corruption == "flip"]
    if s.empty:
        return [Verdict("capacity", "-", "-", "not run", part, "", "-")]
    alpha = float(s.alpha.iloc[np.argmin(np.abs(s.alpha.to_numpy() - alpha))])  # the measured alpha nearest
    final = final_epoch(results)
    final = final[(final.corruption == "flip") & np.isclose(final.alpha, alpha)]
    if "diverged" in final:
        final = final[~final.diverged.astype(bool)]
    if final.empty:
        return [Verdict("capacity", "-", "-", "not run", part, "", "-")]
    mem = _Boot(final.seed).means(final, ["model", "arch"], "memorization")
    try:
        mlp, qnn = mem.loc["mlp"], mem.loc["qnn"]
    except KeyError:
        return [Verdict("capacity", "-", "-", "not run", part, "", "-")]
    margin = mlp.to_numpy(float).min(axis=0) - qnn.to_numpy(float).max(axis=0)
    verdict, interval = _decide([_part("smallest MLP - largest QNN memorisation", margin, ">", 0.0)])
    return [Verdict(f"capacity: the MLP memorises at every size, the QNN at no depth (alpha = {alpha:g})",
                    "smallest MLP memorisation above the largest QNN memorisation",
                    "MLP " + ", ".join(f"{a} {v:.2f}" for a, v in mlp[0].items())
                    + "; QNN " + ", ".join(f"{a} {v:.2f}" for a, v in qnn[0].items()), verdict, part, "", interval)]


def _separated(card: pd.Series, column: str, lower: str, higher: str, method: str) -> str:
    """"holds" when ``lower``'s interval of ``column`` lies wholly at or below ``higher``'s, "departs" when wholly
    above, "indeterminate" when they overlap; read from the values where the card has no intervals."""
    a, b = card.loc[(lower, method)], card.loc[(higher, method)]
    lo_a, hi_a = a.get(f"{column}_lo", np.nan), a.get(f"{column}_hi", np.nan)
    lo_b, hi_b = b.get(f"{column}_lo", np.nan), b.get(f"{column}_hi", np.nan)
    if not np.isfinite([a[column], b[column]]).all():
        return "undefined"
    if f"{column}_lo" not in card.columns:  # a card without intervals (before 2026-12-06): the values decide
        return "holds" if a[column] <= b[column] else "departs"
    if not np.isfinite([lo_a, hi_a, lo_b, hi_b]).all():
        return "indeterminate"  # an interval the shadows could not resolve
    return "holds" if hi_a <= lo_b else "departs" if lo_a > hi_b else "indeterminate"


def _combined(verdicts: list[str]) -> str:
    for v in ("departs", "undefined", "indeterminate"):
        if v in verdicts:
            return v
    return "holds"


def scorecard_claims(card: pd.DataFrame, part: str, data: str | None = None) -> list[Verdict]:
    """The paper's "QNN is easier to unlearn", asked of per-example attacks, for each of finetune and scrub
    present: the U-LiRA AUC (0.5: forgotten) of the QNN at most the MLP's. Read from the AUCs' 95% intervals
    (``qrobust.analysis.ulira``: a bootstrap over shadows and poisoning draws): holds when the QNN's interval lies
    wholly at or below the MLP's, departs when wholly above, indeterminate when they overlap (a card without
    intervals: the values decide, as before 2026-12-06).

    A second reading (qrobust's, added 2026-12-06): the two teachers leak very differently before any unlearning
    (the AUC of "none"), so a lower AUC after unlearning may only mean less was there to remove. ``removed`` is the
    share of each model's own leak that the method took away, (AUC_none - AUC) / (AUC_none - 0.5); the QNN is
    easier to unlearn in this sense when its share's interval lies wholly at or above the MLP's."""
    ok = card[~card.diverged.astype(bool) & card.auc.notna()].set_index(["model", "method"])
    methods = [m for m in ("finetune", "scrub") if ("qnn", m) in ok.index and ("mlp", m) in ok.index]
    if not methods:
        return [Verdict("scorecard", "-", "-", "not run", part, "", "-")]

    def interval(column, model, m):
        row = ok.loc[(model, m)]
        lo, hi = row.get(f"{column}_lo", np.nan), row.get(f"{column}_hi", np.nan)
        return f"[{lo:.3f}, {hi:.3f}]" if np.isfinite([lo, hi]).all() else "-"

    def text(column):
        return ", ".join(f"{m}: QNN {ok.loc[('qnn', m), column]:.3f}, MLP {ok.loc[('mlp', m), column]:.3f}"
                         for m in methods)

    def intervals(column):
        return "; ".join(f"{m}: QNN {interval(column, 'qnn', m)}, MLP {interval(column, 'mlp', m)}" for m in methods)

    on = f"{data}: " if data else ""  # the dataset, where several scorecards share a report
    out = [Verdict(f"{on}the QNN is easier to unlearn, judged per example (U-LiRA)",
                   "U-LiRA AUC of the QNN <= the MLP's (95% intervals separate), for " + " and ".join(methods),
                   text("auc"), _combined([_separated(ok, "auc", "qnn", "mlp", m) for m in methods]), part, "",
                   intervals("auc"))]
    if "removed" in ok:
        out.append(Verdict(f"{on}the QNN is easier to unlearn, as a share of its own leak removed (qrobust's reading)",
                           "removed = (AUC_none - AUC) / (AUC_none - 0.5): the QNN's >= the MLP's (95% intervals "
                           "separate), for " + " and ".join(methods), text("removed"),
                           _combined([_separated(ok, "removed", "mlp", "qnn", m) for m in methods]), part, "",
                           intervals("removed")))
    return out


# --- each study's verdicts (the study registry's ``claims``): which judges apply to a run, from its data -----


def _published(kind: str, dataset: str | None) -> pd.DataFrame | None:
    """The paper's published numbers of ``kind`` ("noise", "unlearning") for ``dataset``, where it published them."""
    from qrobust import paper

    if dataset not in paper.NOISE_DATASETS:
        return None
    return paper.published_noise(dataset) if kind == "noise" else paper.published_unlearning(dataset)


def _critical(run) -> pd.DataFrame:
    """A sweep run's critical points: stored (the report stores them first), else computed."""
    if "critical_points" in run.tables:
        return run["critical_points"]
    from qrobust.analysis.critical import critical_points

    return critical_points(run["results"])


def sweep_verdicts(run, part: str) -> list[Verdict]:
    """A sweep's verdicts: the capacity claims where a model has several architectures, else Fig. 2's."""
    results, dataset = run["results"], run.settings.get("dataset")
    if "arch" in results and results.groupby("model").arch.nunique().max() > 1:
        return capacity_claims(results, part)
    return noise_claims(results, _critical(run), part, str(dataset).upper(), _published("noise", dataset))


def controls_verdicts(run, part: str) -> list[Verdict]:
    """The controls study's verdicts: Fig. 2's rules on its sweep (the QNN, the MLP and the controls, under label
    flipping), each generic rule also applied to every control (``Verdict.also_passed_by``). Its per-claim
    comparison of the QNN with the controls is ``qrobust.analysis.controls`` (quantum.csv)."""
    dataset = run.settings.get("dataset")
    verdicts = noise_claims(run["results"], _critical(run), part, f"{str(dataset).upper()} (controls)",
                            _published("noise", dataset))
    return [v for v in verdicts if v.verdict != "not run"]  # a rule on a corruption the study did not train


def device_verdicts(run, part: str) -> list[Verdict]:
    """The device study's verdicts: the paper's QNN rules at each device setting (``device_claims``)."""
    return device_claims(run["results"], _critical(run), part, str(run.settings.get("dataset")).upper())


def gauge_verdicts(run, part: str) -> list[Verdict]:
    """The gauge study's verdicts: Fig. 2's on the paper's gauge (a random phase per state, as an eigensolver
    gives them), and qrobust's gauge finding on every gauge."""
    from qrobust.data.gauge import DEFAULT_GAUGE

    out = []
    if DEFAULT_GAUGE in run.runs:
        default = run.runs[DEFAULT_GAUGE]
        dataset = default.settings.get("dataset")
        out += noise_claims(default["results"], _critical(default), part,
                            f"{str(dataset).upper()} (gauge {DEFAULT_GAUGE})", _published("noise", dataset))
    return out + gauge_claims(run["gauge"], part, {g: r["results"] for g, r in run.runs.items()})


def unlearning_verdicts(run, part: str) -> list[Verdict]:
    """An unlearning study's verdicts: the per-example scorecard's where it has shadows; none for a loss-weight
    grid (a map, not a claim of the paper); else Fig. 3's."""
    s = run.settings
    dataset = s.get("dataset")
    if "scorecard" in run.tables:
        return scorecard_claims(run["scorecard"], part, str(dataset).upper() if dataset else None)
    if len(s.get("kl_ws", ())) > 1 or len(s.get("fo_ws", ())) > 1:
        return []
    return unlearning_claims(run["results"], run["final"], part, str(dataset).upper(),
                             published=_published("unlearning", dataset))


def landscape_verdicts(run, part: str) -> list[Verdict]:
    return landscape_claims(run["landscape"], part)
