"""Every experiment of the paper (arXiv:2508.02422) at its settings, each a study of its own: ``qrobust reproduce``.

A reproduction is a directory of parts, one run directory each (``OUT/PART``), so it resumes as a whole: a part
whose study finished is read back, a part cut short resumes from its chunks. The parts:

  noise-mnist      Fig. 2 on MNIST: QNN and MLP, label flipping and feature randomisation, alpha 0 to 0.9
  noise-xxz        Fig. 2 on XXZ under each gauge of the states (the gauge study: OUT/noise-xxz/GAUGE)
  capacity-mnist   the capacity study: the MLP's hidden sizes and the QNN's depth, under label flipping
  unlearn-mnist    Fig. 3 on MNIST: retrain, finetune, scrub, ga at alpha 0.3
  unlearn-xxz      Fig. 3 on XXZ
  weights-mnist    SCRUB's and gradient ascent's loss-weight grid on MNIST
  landscape-mnist  the Hessian trace ratio noisy / clean
  detect-mnist     finding the flipped labels
  controls-DATA    is it quantum? the QNN, the MLP and classical controls of the QNN's model class under label
                   flipping, on mnist, xxz, tfim and cluster (the quick profile: mnist only, 3 seeds: the
                   fewest for which the critical point has an interval)
  ulira-controls-DATA  is it quantum? U-LiRA after fine-tuning for the QNN, the MLP and every control of the
                   controls study, 64 shadows each, on mnist, xxz, tfim and cluster (full profile only: 7 min for
                   MNIST on 2 cores, beyond the demo's five minutes)
  attack-DATA      against the strongest attacker: random, boundary and adaptive (gradient, influence, transfer)
                   label flips per model, beside partition-ensemble and smoothing certificates, on mnist and xxz
                   (full profile only)
  device-DATA      does resilience survive a device? the QNN under label flipping at 100, 1,000 and 10,000 shots
                   and exact, the MLP beside it, on mnist and xxz (full profile only; the Gaussian shot gradient)
  device-noise-DATA  does resilience survive gate noise? the same under depolarizing noise 0.001 and 0.01 after
                   every gate, on mnist and on xxz at 8 spins (full profile only: ~2 hours for MNIST on 2 cores)
  scorecard-mnist  forgetting per example with shadow replicas (U-LiRA, the challenge's epsilon)

``profile``: "full" (the paper's settings: 5 seeds, every alpha, 64 shadows), "quick" (fewer seeds and
sizes, chosen so every finding still shows in minutes on 2 CPU cores), or "tiny" (a smoke test of the
machinery on toy sizes: its numbers mean nothing). The studies return and store tables; the judging
and the report are ``qrobust.analysis.claims`` and ``qrobust.paper_report``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qrobust.errors import ConfigError

log = logging.getLogger("qrobust")

PROFILES = ("full", "quick", "tiny")
ALPHAS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class Part:
    """One experiment: its directory name, what it shows, the command that reproduces it at the paper's
    settings, and its settings per profile (keyword arguments of its study's config)."""

    name: str
    title: str
    command: str
    study: str  # its study's name in qrobust.experiments.registry
    settings: dict = field(default_factory=dict)  # profile -> config keywords

    def runs_in(self, profile: str) -> bool:
        """Whether the part belongs to ``profile`` (a part without settings for it is left out: the quick
        profile runs the controls on MNIST only)."""
        return profile in self.settings

    def config(self, profile: str):
        """The part's study config at ``profile`` (the study's config type, ``qrobust.experiments.registry``)."""
        from qrobust.experiments.registry import study

        return study(self.study).get("config")(**dict(self.settings.get("all", {}), **self.settings[profile]))


_TINY_MNIST = dict(n_train_per_class=12)
# the controls parts: the paper's grid and two points either side of 0.5, where the critical point is located
CONTROL_ALPHAS = tuple(sorted(ALPHAS + (0.45, 0.55)))
_CONTROL_ALPHAS_TEXT = ",".join(f"{a:g}" for a in CONTROL_ALPHAS)
_TINY_XXZ = dict(n_qubits=4)
_TINY_CHAIN_MODELS = ("qnn", "mlp", "quadratic")
# the controls study's default models (qrobust.experiments.controls.MODELS, held equal by a test), spelled out here so
# that this module stays light
CONTROL_MODELS = ("qnn", "mlp", "quadratic", "logistic", "mlp_wd", "mlp_invariant", "fidelity_kernel",
                  "projected_kernel", "mlp_pca")
S2 = (0, 1)
# evaluation at the last epoch only (every part's epochs are below it): the sweeps' verdicts, figures and critical
# points read the final epoch, so evaluating the others is work nobody reads (issue 32, item 5; 14 to 17% of a
# QNN's training). Stored replicas keep the epochs their run evaluated, so every part that reads the last epoch
# reuses them.
LAST = 1000
NOISE_AXIS = ("none", "depolarizing:0.001", "depolarizing:0.01")  # the gate-noise strengths

PARTS = (
    Part("noise-mnist", "Noise response on MNIST (the paper's Fig. 2)",
         "qrobust sweep --dataset mnist --seeds 5 --eval-every 1000 --out OUT/noise-mnist", "sweep",
         {"all": dict(dataset="mnist", eval_every=LAST), "full": dict(), "quick": dict(seeds=(0,)),
          "tiny": dict(_TINY_MNIST, seeds=S2, alphas=(0.0, 0.3, 0.6, 0.9), epochs=3)}),
    Part("noise-xxz", "Noise response on XXZ, under each gauge of the states (Fig. 2)",
         "qrobust gauge --dataset xxz --corruption flip --corruption features --seeds 5 --keep-weights qnn "
         "--eval-every 1000 --out OUT/noise-xxz", "gauge",
         {"all": dict(dataset="xxz", corruptions=("flip", "features"), keep_weights=("qnn",), eval_every=LAST),
          "full": dict(), "quick": dict(seeds=(0,), n_qubits=8),
          "tiny": dict(_TINY_XXZ, seeds=S2, alphas=(0.0, 0.3, 0.6, 0.9), epochs=3)}),
    Part("capacity-mnist", "Capacity: the MLP's hidden sizes and the QNN's depth under label flipping",
         "qrobust sweep --dataset mnist --corruption flip --hidden 64,16 --hidden 32,8 --hidden 16,4 --hidden 8,2 "
         "--hidden 8,4 --depth 2 --depth 6 --depth 10 --seeds 5 --eval-every 1000 --out OUT/capacity-mnist", "sweep",
         {"all": dict(dataset="mnist", corruptions=("flip",), eval_every=LAST),
          "full": dict(hidden=((64, 16), (32, 8), (16, 4), (8, 2), (8, 4)), depth=(2, 6, 10)),
          "quick": dict(hidden=((64, 16), (8, 2)), depth=(2, 6), seeds=(0,), alphas=(0.0, 0.2, 0.4, 0.6, 0.8)),
          "tiny": dict(_TINY_MNIST, hidden=((8, 2), (4, 2)), depth=(1, 2), seeds=(0,), alphas=(0.0, 0.5),
                       epochs=2)}),
    Part("unlearn-mnist", "Unlearning on MNIST at alpha = 0.3 (Fig. 3)",
         "qrobust unlearn --dataset mnist --seeds 5 --out OUT/unlearn-mnist", "unlearning",
         {"all": dict(dataset="mnist"), "full": dict(), "quick": dict(seeds=(0,), epochs=20),
          "tiny": dict(_TINY_MNIST, seeds=S2, epochs=6, teacher_epochs=3)}),
    Part("unlearn-xxz", "Unlearning on XXZ at alpha = 0.3 (Fig. 3)",
         "qrobust unlearn --dataset xxz --seeds 5 --out OUT/unlearn-xxz", "unlearning",
         {"all": dict(dataset="xxz"), "full": dict(), "quick": dict(seeds=(0,), epochs=20, n_qubits=8),
          "tiny": dict(_TINY_XXZ, seeds=S2, epochs=6, teacher_epochs=3)}),
    Part("weights-mnist", "The loss-weight grid of SCRUB and gradient ascent on MNIST",
         "qrobust unlearn --dataset mnist --method scrub --method ga --kl-w 0:0.9:0.1 --fo-w 0:0.9:0.1 --seeds 1 "
         "--out OUT/weights-mnist", "unlearning",
         {"all": dict(dataset="mnist", methods=("scrub", "ga")),
          "full": dict(seeds=(0,), kl_ws=ALPHAS, fo_ws=ALPHAS),
          "quick": dict(seeds=(0,), kl_ws=(0.0, 0.5), fo_ws=(0.0, 0.5), epochs=10),
          "tiny": dict(_TINY_MNIST, seeds=(0,), kl_ws=(0.0, 0.5), fo_ws=(0.0, 0.5), epochs=2, teacher_epochs=2)}),
    Part("landscape-mnist", "The loss landscape: Hessian trace ratio noisy / clean",
         "qrobust landscape --dataset mnist --seeds 5 --out OUT/landscape-mnist", "landscape",
         {"all": dict(dataset="mnist"), "full": dict(), "quick": dict(seeds=(0,), hutchinson_samples=20),
          "tiny": dict(n_train_per_class=20, seeds=(0,), epochs=2, hutchinson_samples=4, n_eval=10,
                       lanczos_iter=4, lanczos_k=2)}),
    Part("detect-mnist", "Finding the flipped labels without being told",
         "qrobust detect --dataset mnist --seeds 3 --out OUT/detect-mnist", "detection",
         {"all": dict(dataset="mnist"), "full": dict(), "quick": dict(seeds=(0,), baselines=False),
          "tiny": dict(_TINY_MNIST, seeds=(0,), alphas=(0.3,), epochs=2, baselines=False)}),
    *(Part(f"controls-{data}", f"Is it quantum? The QNN beside classical controls of its model class on {title}",
           f"qrobust controls --dataset {data} --alphas {_CONTROL_ALPHAS_TEXT} --seeds 5 --eval-every 1000 "
           f"--out OUT/controls-{data}", "controls",
           {"all": dict(dataset=data, alphas=CONTROL_ALPHAS, eval_every=LAST), "full": dict(),
            **({"quick": quick} if quick else {}),
            "tiny": dict(tiny, seeds=S2, alphas=(0.0, 0.3, 0.5, 0.7), epochs=3,
                         models=("qnn", "mlp", "quadratic", "logistic"))})
      for data, title, quick, tiny in (
          # (the quick grid ended at 0.8 until 2026-12-06, changed after the first quick run: at 0.8 a learner that
          # has perfectly inverted the rule sits exactly on the inverted-rule verdict's threshold, train acc 0.8)
          ("mnist", "MNIST", dict(seeds=(0, 1, 2), alphas=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9),
                                  models=("qnn", "mlp", "quadratic", "logistic", "fidelity_kernel")), _TINY_MNIST),
          ("xxz", "XXZ", None, _TINY_XXZ), ("tfim", "TFIM", None, _TINY_XXZ),
          ("cluster", "the cluster-Ising chain", None, _TINY_XXZ))),
    *(Part(f"ulira-controls-{data}", f"Is it quantum? Forgetting per example (U-LiRA after fine-tuning) of the QNN, "
           f"the MLP and the classical controls on {title}",
           f"qrobust unlearn --dataset {data} " + " ".join(f"--model {m}" for m in CONTROL_MODELS)
           + f" --method finetune --seeds 1 --shadows 64 --out OUT/ulira-controls-{data}", "unlearning",
           {"all": dict(dataset=data, models=CONTROL_MODELS, methods=("finetune",), seeds=(0,)),
            "full": dict(shadows=64),
            "tiny": dict(tiny, models=tiny_models, shadows=8, epochs=2, teacher_epochs=2)})
      for data, title, tiny, tiny_models in (
          ("mnist", "MNIST", _TINY_MNIST, ("qnn", "mlp", "quadratic", "logistic")),
          ("xxz", "XXZ", _TINY_XXZ, _TINY_CHAIN_MODELS), ("tfim", "TFIM", _TINY_XXZ, _TINY_CHAIN_MODELS),
          ("cluster", "the cluster-Ising chain", _TINY_XXZ, _TINY_CHAIN_MODELS))),
    *(Part(f"attack-{data}", f"Against the strongest attacker on {title}: random, heuristic and adaptive label flips "
           "per model, beside certified accuracy",
           f"qrobust attack --dataset {data} --seeds 5 --eval-every 1000 --out OUT/attack-{data}", "attack",
           {"all": dict(dataset=data, eval_every=LAST), "full": dict(),
            "tiny": dict(tiny, seeds=S2, alphas=(0.0, 0.2, 0.4), epochs=2, unroll_steps=2, partitions=3,
                         models=("qnn", "mlp", "logistic"))})
      for data, title, tiny in (("mnist", "MNIST", _TINY_MNIST), ("xxz", "XXZ", _TINY_XXZ))),
    *(Part(f"device-{data}", f"Does resilience survive a device? The QNN at 100, 1,000, 10,000 shots and exact on "
           f"{title}", f"qrobust device --dataset {data} --shot-gradient gaussian --seeds 5 --eval-every 1000 "
           f"--out OUT/device-{data}",
           "device",
           # gaussian: the shift rule's sampled gradient costs 2 x 240 circuits per step (about 20 minutes per MNIST
           # replica on 2 cores, 150 replicas): docs/device.md
           {"all": dict(dataset=data, shot_gradient="gaussian", eval_every=LAST), "full": dict(),
            "tiny": dict(tiny, seeds=S2, alphas=(0.0, 0.3, 0.6, 0.9), epochs=3, shots=(100, None))})
      for data, title, tiny in (("mnist", "MNIST", _TINY_MNIST), ("xxz", "XXZ", _TINY_XXZ))),
    *(Part(f"device-noise-{data}", f"Does resilience survive gate noise? The QNN under depolarizing noise 0.001 and "
           f"0.01 after every gate, exact shots, on {title}",
           f"qrobust device --dataset {data}{flag} --shot-gradient gaussian --seeds 5 --eval-every 1000 --shots inf "
           f"--noise none,depolarizing:0.001,0.01 --out OUT/device-noise-{data}",
           "device",
           # the Heisenberg operator's cost on 2 cores (docs/device.md): MNIST ~68 s per noisy replica, 100 of them;
           # XXZ at its 12 spins ~1.3 h per replica, so 8 spins here, named in the title
           {"all": dict(dataset=data, shot_gradient="gaussian", eval_every=LAST, shots=(None,), noise=NOISE_AXIS),
            "full": dict(full), "tiny": dict(tiny, seeds=S2, alphas=(0.0, 0.3, 0.6, 0.9), epochs=3)})
      for data, title, flag, full, tiny in (("mnist", "MNIST", "", {}, _TINY_MNIST),
                                            ("xxz", "XXZ at 8 spins (a reduced size)", " --qubits 8", dict(n_qubits=8),
                                             _TINY_XXZ))),
    Part("scorecard-mnist", "Forgetting per example: U-LiRA and the challenge's epsilon from shadow replicas",
         "qrobust unlearn --dataset mnist --method retrain --method finetune --method scrub --method ga "
         "--method neggrad --method salun --method l1_sparse --method retrain_full --shadows 64 "
         "--out OUT/scorecard-mnist", "unlearning",
         {"all": dict(dataset="mnist", methods=("retrain", "finetune", "scrub", "ga", "neggrad", "salun", "l1_sparse",
                                                "retrain_full")),
          "full": dict(shadows=64), "quick": dict(seeds=(0,), shadows=8, epochs=20,
                                                  methods=("retrain", "finetune", "scrub", "retrain_full")),
          "tiny": dict(_TINY_MNIST, seeds=(0,), shadows=8, epochs=2, teacher_epochs=2,
                       methods=("finetune", "retrain_full"))}),
)
PART_NAMES = tuple(p.name for p in PARTS)


def check_parts(names) -> tuple[Part, ...]:
    """The parts named (all of them for None or empty), in the canonical order."""
    if not names:
        return PARTS
    unknown = [n for n in names if n not in PART_NAMES]
    if unknown:
        raise ConfigError(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PART_NAMES)}")
    return tuple(p for p in PARTS if p.name in names)


def run_part(part: Part, out: Path, profile: str, *, progress: bool = True):
    """Run (or resume) one part into ``out / part.name``; returns what its study's run returns."""
    from qrobust.experiments.registry import study

    return study(part.study).get("run")(part.config(profile), out / part.name, progress=progress)


def read_record(out: Path) -> tuple[dict, str | None]:
    """The reproduction's record (reproduce.json: profile, per part its seconds and whether it finished) and why
    it could not be read (None: it could, or there is none yet)."""
    path = Path(out) / "reproduce.json"
    if not path.is_file():
        return {}, None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("parts", {}), dict):
            raise ValueError("not a record of parts")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return {}, f"{type(exc).__name__}: {str(exc)[:80]}"
    return record, None


def run_reproduce(out: str | Path, *, profile: str = "full", parts=None, progress: bool = True,
                  on_part: Callable[[Part, float], None] | None = None, plan: bool = True) -> dict:
    """Run (or resume) the reproduction into ``out``; returns its record (also ``out/reproduce.json``): the
    profile, and per part its wall seconds over every call (an interrupted call's included, counted in
    ``interrupted``; a SIGKILL's are lost) and whether it finished. Every part's config is validated before
    the first one runs. ``on_part(part, seconds)`` is called after each part. ``plan``: first train the union
    of the replicas the unfinished parts declare, once (``qrobust.experiments.replica_plan``; recorded as
    ``plan``), so that each part reads them back."""
    from qrobust import replicas
    from qrobust.compiles import count_compiles
    from qrobust.experiments.chunks import progress_label
    from qrobust.files import atomic_write_text, unwritable

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose {', '.join(PROFILES)}")
    named = check_parts(parts)
    chosen = tuple(p for p in named if p.runs_in(profile))
    absent = [p.name for p in named if parts and not p.runs_in(profile)]
    if absent:
        raise ConfigError(f"the {profile} profile has no part {', '.join(absent)} (the quick profile runs the controls "
                          "on MNIST only)")
    for part in chosen:
        config = part.config(profile)
        config.validate()
    out = Path(out)
    reason = unwritable(out)
    if reason is not None:
        raise ConfigError(f"--out {out}: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "reproduce.json"
    record, damage = read_record(out)
    if damage is not None:  # the parts resume from their own directories; only the record's times are lost
        log.warning("%s is damaged (%s): its recorded wall times are lost; the parts resume from their own "
                    "directories and a new record is written", path, damage)
    if record.get("profile", profile) != profile:
        raise ConfigError(f"{out} holds a {record['profile']} reproduction: use another --out for {profile}")
    record.update(profile=profile, parts=record.get("parts", {}))
    if plan:
        _plan(record, [p for p in chosen if not record["parts"].get(p.name, {}).get("finished")], profile,
              progress, path)
    for part in chosen:
        entry = record["parts"].setdefault(part.name, {"seconds": 0.0})
        entry["command"] = part.command.replace("OUT", str(out))
        start = time.perf_counter()
        with count_compiles() as compiles:
            try:
                with progress_label(part.name):
                    run_part(part, out, profile, progress=progress)
            except BaseException:  # Ctrl-C, SIGTERM, an error: the time spent still counts (its chunks are kept)
                entry["seconds"] = round(entry["seconds"] + time.perf_counter() - start, 1)
                entry["compiles"] = compiles.as_dict()
                entry.setdefault("finished", False)
                entry["interrupted"] = entry.get("interrupted", 0) + 1
                atomic_write_text(path, json.dumps(record, indent=2))
                raise
        seconds = time.perf_counter() - start
        entry["seconds"] = round(entry["seconds"] + seconds, 1)
        entry["compiles"] = compiles.as_dict()  # the last call's: what resuming it cost
        entry["replicas"] = replicas.counted(out / part.name)
        entry["finished"] = True
        atomic_write_text(path, json.dumps(record, indent=2))
        if on_part is not None:
            on_part(part, seconds)
    return record


def _plan(record: dict, parts: list[Part], profile: str, progress: bool, path: Path) -> None:
    """Train the replicas ``parts`` declare, once (``replica_plan.run``), into ``record["plan"]`` (its seconds
    summed over the calls that planned)."""
    from qrobust.compiles import count_compiles
    from qrobust.experiments import replica_plan
    from qrobust.experiments.chunks import progress_label
    from qrobust.files import atomic_write_text

    if not parts:
        return
    seconds = record.get("plan", {}).get("seconds", 0.0)
    start = time.perf_counter()
    with count_compiles() as compiles, progress_label("replica plan"):
        try:
            planned = replica_plan.run({p.name: (p.study, p.config(profile)) for p in parts}, progress=progress)
        finally:
            record["plan"] = dict(record.get("plan", {}), seconds=round(seconds + time.perf_counter() - start, 1),
                                  compiles=compiles.as_dict())
            atomic_write_text(path, json.dumps(record, indent=2))
    record["plan"].update(planned, parts=[p.name for p in parts])
    atomic_write_text(path, json.dumps(record, indent=2))
