"""The ``qrobust`` command line. Thin: it parses, then calls the library."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from qrobust.errors import ConfigError, QrobustError


def parse_alphas(text: str, what: str = "alphas") -> tuple[float, ...]:
    """'0:0.9:0.1' (inclusive range) or '0,0.3,0.5' -> values."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            values = np.arange(start, stop + step / 2, step)
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"cannot read {what} {text!r}: use START:STOP:STEP (e.g. 0:0.9:0.1) "
                          "or a comma list (e.g. 0,0.3,0.5)") from None
    return tuple(float(round(v, 10)) for v in values)


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}") from None


MAX_SEEDS = 100_000  # per run (per replica, a row per recorded epoch is kept in memory)


def seed_range(args) -> tuple[int, ...]:
    """The seeds asked for by --seeds (a count) and --seed-offset (the first, default 0)."""
    offset = getattr(args, "seed_offset", 0)
    if args.seeds < 1 or offset < 0:
        raise ConfigError(f"--seeds must be >= 1 and --seed-offset >= 0, got {args.seeds}, {offset}")
    if args.seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds {args.seeds:,} is more than {MAX_SEEDS:,} seeds in one run; its result rows "
                          "would not fit in memory: split the seeds over runs with --seed-offset")
    return tuple(range(offset, offset + args.seeds))


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one and its help does not already say it (never "None")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False) or "default" in text or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors as every other error: one line "qrobust: error: ...", exit status 2, no usage dump."""

    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


_DATASETS = ("mnist", "xxz", "tfim", "cluster", "sklearn-digits", "npz")  # settings.DATASETS (literals: fast --help)
_MODELS = ("qnn", "mlp")
_CORRUPTIONS = ("flip", "features", "class-targeted", "boundary", "quid", "random-labels")  # corruption.CORRUPTIONS
_LABEL_FLIPS = ("flip", "class-targeted", "boundary", "quid")  # corruption.LABEL_FLIPS
_DTYPES = ("complex64", "complex128")
_PARTS = ("noise-mnist", "noise-xxz", "capacity-mnist", "unlearn-mnist", "unlearn-xxz", "weights-mnist",
          "landscape-mnist", "detect-mnist", "scorecard-mnist")  # reproduce.PART_NAMES (literals: fast --help)
_METHODS = ("retrain", "finetune", "scrub", "ga", "neggrad", "relabel", "scrub_kurmanji", "salun", "l1_sparse",
            "retrain_full")


def _study(sub, name: str, help: str, *, seeds: int) -> argparse.ArgumentParser:
    """A subcommand that trains models: the options every study shares, plus --out and --no-progress."""
    p = sub.add_parser(name, help=help, formatter_class=_Help)
    p.add_argument("--dataset", default="mnist", choices=_DATASETS,
                   help="the data: MNIST digits (embedded); ground states of the xxz, tfim (transverse-field Ising) "
                        "or cluster (cluster-Ising, SPT) chain; scikit-learn's 8x8 digits; a user's npz file")
    p.add_argument("--model", action="append", dest="models", choices=_MODELS,
                   help="qnn and/or mlp (repeat; default both)")
    p.add_argument("--seeds", type=int, default=seeds, help="number of seeds")
    p.add_argument("--qubits", type=int, dest="n_qubits", help="spins of a chain (xxz, tfim, cluster; default 12)")
    p.add_argument("--digits", help="two digits A,B: A is class 0, B class 1 (mnist, sklearn-digits; default 1,9)")
    p.add_argument("--data-file", help="--dataset npz: an .npz file with x_train, y_train, x_val, y_val "
                                       "(labels 0/1; rows amplitude-encoded, zero-padded to a power of two)")
    p.add_argument("--mnist-path", help="full MNIST: mnist.npz or a directory of IDX files")
    p.add_argument("--grid", choices=_GRIDS,
                   help="a chain's coupling grid: paper (the published code's: 83 states per class on [0.09, "
                        "1.91], |g - 1| <= 0.045 left out; the default) or wide (201 points on [0, 2], "
                        "|g - 1| <= 0.2 left out)")
    p.add_argument("--param-range", "--delta-range", dest="param_range",
                   help="LO,HI: the grid's range of the coupling (Delta, h), replacing the grid's")
    p.add_argument("--n-points", type=int, help="points on the grid's range, replacing the grid's")
    p.add_argument("--window", type=float, help="couplings with |g - 1| <= WINDOW are left out, replacing the grid's")
    p.add_argument("--gauge", choices=_GAUGES,
                   help="the global phase of each XXZ state: phase (a random e^{i phi} per state, as an "
                        "eigensolver gives them; the default for xxz), sign (a random +-1), fixed (canonical: "
                        "the largest amplitude real positive); the QNN cannot see it, the MLP can")
    p.add_argument("--gauge-seed", type=int, default=0, help="the seed of the gauge's draw (recorded)")
    p.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--simulator", choices=("auto",) + _SIMULATORS, default="auto",
                   help="the QNN's simulator: auto is the C++ kernel on CPU where it builds ('native' for the "
                        "hea ansatz, 'native-gates' for rxry_cnot), else 'blocks' (hea) or 'tc-fused'; "
                        "config.json records the one that ran")
    p.add_argument("--distributed", action="store_true",
                   help="one process per host: join the job (jax.distributed.initialize, settings from the "
                        "cluster's environment or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) "
                        "and share the chunks; --out must be on a shared file system")
    return p


# qrobust.models.qnn.SIMULATORS (not imported: fast --help)
_SIMULATORS = ("native", "native-gates", "blocks", "tc-fused", "tc-gates")
_GAUGES = ("fixed", "sign", "phase")  # qrobust.data.gauge.GAUGES (likewise)
_GRIDS = ("paper", "wide")  # qrobust.data.phases.GRIDS (likewise)
_ANSATZE = ("hea", "rxry_cnot", "hea_cz", "reupload")  # qrobust.models.ansatze.LIBRARY (likewise)
_ENCODINGS = ("amplitude", "angle", "reupload")  # qrobust.data.features.ENCODINGS (likewise)


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"cannot read {what} {text!r}: expected comma-separated numbers") from None


def _data_options(args) -> dict:
    """The data fields of every study's config (``qrobust.experiments.study.StudyConfig``)."""
    options = dict(dataset=args.dataset, n_qubits=args.n_qubits, mnist_path=args.mnist_path, gauge=args.gauge,
                   gauge_seed=args.gauge_seed, data_file=args.data_file,
                   n_train_per_class=getattr(args, "n_train_per_class", None))
    if args.digits is not None:
        digits = parse_ints(args.digits)
        if len(digits) != 2:
            raise ConfigError(f"--digits takes two digits A,B, got {args.digits!r}")
        options["digits"] = digits
    if args.grid is not None or args.param_range is not None or args.n_points is not None or args.window is not None:
        from qrobust.data.phases import with_overrides
        from qrobust.experiments.settings import QUANTUM_DATASETS

        if args.dataset not in QUANTUM_DATASETS:
            raise ConfigError(f"--grid, --param-range, --n-points and --window apply to the quantum phases "
                              f"({', '.join(QUANTUM_DATASETS)}) only")
        value_range = parse_floats(args.param_range, "--param-range") if args.param_range is not None else None
        options["grid"] = with_overrides(args.grid, value_range=value_range, n_points=args.n_points,
                                         window=args.window)
    return options


def _simulator(args) -> str | None:
    return None if args.simulator == "auto" else args.simulator


def _precision_option(p) -> None:
    p.add_argument("--matmul-precision", choices=("highest", "tf32"), default="highest",
                   help="precision of the 'blocks' simulator's products: tf32 is TensorFloat-32 on a GPU "
                        "(faster, about 1e-3 relative error per product; the same as highest on CPU)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qrobust")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _logging(args) -> None:
    """qrobust's messages (logger "qrobust": fallbacks, the kernel build, chunk plans) on stderr."""
    import logging

    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("qrobust: %(message)s"))
    logger = logging.getLogger("qrobust")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _compilation_cache() -> None:
    """JAX's persistent compilation cache in qrobust's cache directory ($QROBUST_CACHE/xla), so a repeated
    small study does not compile again; left alone where the user chose their own (JAX_COMPILATION_CACHE_DIR
    or jax.config)."""
    import os

    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return
    from qrobust.cache import cache_dir

    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def _sweep_options(sw, dataset: str = "mnist") -> None:
    """The sweep's own options (on the sweep and the gauge study)."""
    sw.set_defaults(dataset=dataset)
    sw.add_argument("--corruption", action="append", dest="corruptions", choices=_CORRUPTIONS,
                    help="repeat; default the paper's two, flip and features. Aimed label flips: class-targeted "
                         "(class 0 only), boundary (what a clean reference model is least sure of), quid (states "
                         "nearest the other class); random-labels (labels replaced by coin flips: at alpha 1, "
                         "can the model memorise noise?)")
    sw.add_argument("--alphas", default="0:0.9:0.1", help="START:STOP:STEP or a comma list")
    sw.add_argument("--seed-offset", type=int, default=0, help="first seed")
    sw.add_argument("--epochs", type=int, help="override the paper's epochs")
    sw.add_argument("--batch-size", type=int, help="override the paper's batch size")
    sw.add_argument("--lr", type=float, action="append", dest="learning_rates",
                    help="learning rate; repeat for a learning-rate grid axis")
    sw.add_argument("--depth", type=int, action="append", dest="depths",
                    help="QNN depth; repeat for a capacity axis (each depth its own program)")
    sw.add_argument("--hidden", action="append", dest="hiddens",
                    help="MLP hidden sizes, e.g. 64,16; repeat for a capacity axis")
    sw.add_argument("--ansatz", action="append", dest="ansatze", choices=_ANSATZE,
                    help="the QNN's circuit (repeat for an axis; default hea, the paper's): rxry_cnot (the paper's "
                         "Hessian-study circuit), hea_cz (RY RZ + CZ chain), reupload (data re-uploading, with "
                         "--encoding reupload); written in TensorCircuit, qrobust/models/ansatze.py")
    sw.add_argument("--encoding", action="append", dest="encodings", choices=_ENCODINGS,
                    help="how inputs enter (repeat for an axis; default amplitude, the paper's): angle (principal "
                         "components as RY angles) or reupload (the same features, loaded by the reupload "
                         "ansatz in every layer); the MLP gets the same features")
    sw.add_argument("--features", type=int, dest="n_features",
                    help="principal components for angle and reupload encodings (default: the data's qubits)")
    sw.add_argument("--dtype", default="complex64", choices=_DTYPES, help="the QNN's state dtype")
    sw.add_argument("--n-train", type=int, dest="n_train_per_class", help="training samples per class")
    sw.add_argument("--chunk-size", type=int, help="replicas per compiled program (default: what fits in memory)")
    _precision_option(sw)
    sw.add_argument("--eval-every", type=int, default=1,
                    help="record metrics every K epochs and at the last (the rest are not evaluated: faster)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qrobust", description="Poisoning resilience of quantum and classical "
                                     "classifiers (Chen & Zhang, arXiv:2508.02422).")
    parser.add_argument("--version", action="version", version=f"qrobust {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages (the kernel build, chunk plans); -vv for debugging")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _sweep_options(_study(sub, "sweep", "noise-response sweep: model x corruption x alpha x seed, one program",
                          seeds=5))
    _sweep_options(_study(sub, "gauge", "the gauge study: the same sweep on quantum data under every gauge "
                                        "(OUT/fixed, OUT/sign, OUT/phase), QNN and MLP side by side", seeds=5),
                   dataset="xxz")

    re = sub.add_parser("reproduce", help="every experiment of the paper, then its report (OUT/report.html)",
                        formatter_class=_Help)
    re.add_argument("--out", required=True, help="the reproduction's directory (resumes where it stopped)")
    re.add_argument("--quick", action="store_true",
                    help="fewer seeds and sizes, chosen so every finding still shows in minutes on 2 CPU cores")
    re.add_argument("--profile", choices=("full", "quick", "tiny"), help=argparse.SUPPRESS)  # tiny: tests
    re.add_argument("--part", action="append", dest="parts", choices=_PARTS,
                    help="run only this part (repeat; default all)")
    re.add_argument("--no-progress", action="store_true", help="no progress bars")
    rp = sub.add_parser("report", help="(re)write the report of a reproduction directory, without training",
                        formatter_class=_Help)
    rp.add_argument("run_dir", help="a directory of qrobust reproduce")

    an = sub.add_parser("analyze", help="critical point of a sweep: fits, bootstrap CIs, figure",
                        formatter_class=_Help)
    an.add_argument("run_dirs", nargs="+", help="sweep output directories")
    an.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of the seeds")
    an.add_argument("--finite-size-out", help="with several runs: where to write finite_size.csv and .png")

    la = _study(sub, "landscape", "Hessian trace and spectrum of trained models against alpha", seeds=5)
    la.add_argument("--alphas", default="0,0.2,0.3,0.4", help="label-flipping ratios (must include 0)")
    la.add_argument("--epochs", type=int, default=50)
    la.add_argument("--hutchinson", type=int, default=100, help="Rademacher probes")
    la.add_argument("--n-eval", type=int, default=100, help="held-out samples the Hessian is taken on")

    de = _study(sub, "detect", "find the flipped labels: model margins, AUM, cleanlab baselines", seeds=3)
    de.add_argument("--alphas", default="0.1:0.5:0.1", help="label-flipping ratios")
    de.add_argument("--corruption", default="flip", choices=_LABEL_FLIPS,
                    help="the label flips to find: the paper's random ones, or an aimed poisoner's")
    de.add_argument("--epochs", type=int, help="override the paper's epochs")
    de.add_argument("--folds", type=int, default=5, help="cross-validation folds of the cleanlab baselines")
    de.add_argument("--no-baselines", action="store_true", help="skip the cleanlab baselines")
    de.add_argument("--n-train", type=int, dest="n_train_per_class", help="training samples per class")

    un = _study(sub, "unlearn", "unlearning of the poisoned samples: methods x seeds x loss weights", seeds=5)
    un.add_argument("--method", action="append", dest="methods", choices=_METHODS,
                    help="the unlearning method (repeat; default the paper's four: retrain, finetune, scrub, ga)")
    un.add_argument("--alpha", type=float, default=0.3, help="label-flipping ratio of the teacher")
    un.add_argument("--corruption", default="flip", choices=_CORRUPTIONS, help="the teacher's corruption")
    un.add_argument("--seed-offset", type=int, default=0, help="first seed")
    un.add_argument("--epochs", type=int, default=50, help="unlearning epochs")
    un.add_argument("--kl-w", default="0", help="SCRUB's retain-KL weight(s): value, list or START:STOP:STEP")
    un.add_argument("--fo-w", default="0.2", help="forget weight(s): value, list or START:STOP:STEP")
    un.add_argument("--known-fraction", default="1",
                    help="fraction(s) of the poisoned samples the forget set holds: value, list or START:STOP:STEP "
                         "(several: the corrective curve, corrective.png)")
    un.add_argument("--forget-source", default="oracle", choices=("oracle", "qnn_detector"),
                    help="oracle (the true poisoned samples) or qnn_detector (those the poisoned QNN refuses)")
    un.add_argument("--shadows", type=int, nargs="?", const=64, default=0, metavar="K",
                    help="shadow replicas per model for the per-example evaluation (U-LiRA, the unlearning "
                         "challenge's epsilon, output KL to retraining; writes scorecard.csv and scorecard.png): "
                         "--shadows alone is 64, 0 (default) skips it")
    un.add_argument("--l1-w", type=float, default=5e-4, help="l1_sparse's penalty weight (Jia et al.'s 5e-4)")
    un.add_argument("--salun-fraction", type=float, default=0.5,
                    help="the fraction of the weights SalUn updates (its saliency mask; default half)")
    un.add_argument("--batch-size", type=int, help="student batch size (default: the paper's)")
    un.add_argument("--lr", type=float, help="student learning rate (default: the paper's)")
    un.add_argument("--teacher-epochs", type=int, help="override the teachers' epochs")
    un.add_argument("--n-train", type=int, dest="n_train_per_class", help="training samples per class")
    un.add_argument("--dtype", default="complex64", choices=_DTYPES, help="the QNN's state dtype")
    un.add_argument("--chunk-size", type=int, help="replicas per compiled program (default: what fits in memory)")
    _precision_option(un)
    return parser


def _x64_if_asked(dtype: str) -> None:
    """complex128 was asked for explicitly on the command line: switch on JAX's 64-bit mode."""
    if dtype == "complex128":
        import jax

        jax.config.update("jax_enable_x64", True)


def _sweep_config(args, corruptions=("flip", "features")):
    from qrobust.experiments.sweep_grid import SweepConfig

    _x64_if_asked(args.dtype)
    return SweepConfig(
        **_data_options(args),
        models=tuple(args.models or ("qnn", "mlp")),
        corruptions=tuple(args.corruptions or corruptions),
        alphas=parse_alphas(args.alphas),
        seeds=seed_range(args),
        epochs=args.epochs, batch_size=args.batch_size,
        learning_rates=tuple(args.learning_rates) if args.learning_rates else None,
        depth=tuple(args.depths) if args.depths else None,
        hidden=tuple(parse_ints(h) for h in args.hiddens) if args.hiddens else None,
        ansatz=tuple(args.ansatze) if args.ansatze else "hea",
        encoding=tuple(args.encodings) if args.encodings else "amplitude", n_features=args.n_features,
        dtype=args.dtype, chunk_size=args.chunk_size, eval_every=args.eval_every,
        simulator=_simulator(args), matmul_precision=args.matmul_precision,
    )


def _sweep(args) -> int:
    from qrobust.experiments.sweep import run_sweep

    config = _sweep_config(args)
    start = time.perf_counter()
    run_sweep(config, args.out, progress=not args.no_progress)
    _draw(args)
    print(f"wrote {args.out}/results.csv, summary.csv, noise_response.png "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _gauge(args) -> int:
    from pathlib import Path

    from qrobust.experiments.gauge import run_gauge_study

    if args.gauge is not None:
        raise ConfigError("the gauge study runs every gauge: --gauge does not apply (--gauge-seed does)")
    start = time.perf_counter()
    summary = run_gauge_study(_sweep_config(args, corruptions=("flip",)), args.out, progress=not args.no_progress)
    from qrobust import sharding

    if sharding.is_primary():
        from qrobust.plots import plot_gauge

        for corruption in dict.fromkeys(summary.corruption):
            suffix = "" if corruption == "flip" else f"_{corruption}"
            plot_gauge(summary, Path(args.out) / f"gauge{suffix}.png", corruption=corruption)
    cols = ["gauge", "model", "corruption", "alpha", "train_acc_mean", "val_acc_mean", "n_seeds"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}/gauge.csv, gauge.png and a sweep per gauge in {time.perf_counter() - start:.1f} s")
    return 0


def _unlearn(args) -> int:
    from qrobust.experiments.unlearning import UnlearnConfig, run_unlearning

    _x64_if_asked(args.dtype)
    config = UnlearnConfig(
        **_data_options(args), models=tuple(args.models or ("qnn", "mlp")),
        methods=tuple(args.methods or ("retrain", "finetune", "scrub", "ga")), alpha=args.alpha,
        corruption=args.corruption, seeds=seed_range(args),
        epochs=args.epochs, kl_ws=parse_alphas(args.kl_w, "kl_w"), fo_ws=parse_alphas(args.fo_w, "fo_w"),
        known_fraction=parse_alphas(args.known_fraction, "known fraction"), forget_source=args.forget_source,
        batch_size=args.batch_size,
        learning_rate=args.lr, l1_w=args.l1_w, salun_fraction=args.salun_fraction, shadows=args.shadows,
        teacher_epochs=args.teacher_epochs, dtype=args.dtype, chunk_size=args.chunk_size,
        simulator=_simulator(args), matmul_precision=args.matmul_precision,
    )
    start = time.perf_counter()
    run_unlearning(config, args.out, progress=not args.no_progress)
    _draw(args)
    extra = ", scorecard.csv, scorecard.png, shadows.csv, examples.csv" if config.shadows else ""
    if config.shadows:
        import pandas as pd

        card = pd.read_csv(Path(args.out) / "scorecard.csv")
        cols = ["model", "method", "val_acc", "forget_acc_clean", "auc", "tpr_at_1pct_fpr", "forgetting_quality",
                "kl_forget_mean"]
        print(card[[c for c in cols if c in card]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}/results.csv, final.csv, recovery.csv, teachers.csv, unlearning.png{extra} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _reproduce(args) -> int:
    from qrobust.experiments.reproduce import run_reproduce

    profile = args.profile or ("quick" if args.quick else "full")
    start = time.perf_counter()

    def done(part, seconds):
        print(f"{part.name}: {seconds:.0f} s", flush=True)

    run_reproduce(args.out, profile=profile, parts=args.parts, progress=not args.no_progress, on_part=done)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    return _write_report(args.out)


def _report(args) -> int:
    return _write_report(args.run_dir)


def _write_report(out) -> int:
    from qrobust import paper_report

    md, page, report = paper_report.write_report(out)
    width = max((len(v.claim) for v in report["verdicts"]), default=10)
    for v in report["verdicts"]:
        paper = f"  [the paper's own numbers: {v.paper.split(':')[0]}]" if v.paper else ""
        print(f"{v.verdict:>9}  {v.claim:<{width}}  {v.measured}{paper}")
    print(f"wrote {page} and {md}")
    return 0


def _analyze(args) -> int:
    from pathlib import Path

    from qrobust import report
    from qrobust.analysis.critical import analyze_sweeps
    from qrobust.files import unwritable

    if args.bootstrap < 10:
        raise ConfigError(f"--bootstrap must be at least 10, got {args.bootstrap}")
    if len(args.run_dirs) > 1 and not args.finite_size_out:
        raise ConfigError("several runs make a finite-size table: say where with --finite-size-out DIR")
    if args.finite_size_out:
        out = Path(args.finite_size_out)
        reason = unwritable(out)
        if reason is not None:
            raise ConfigError(f"--finite-size-out {out}: {reason}")
    for run in args.run_dirs:
        reason = unwritable(Path(run)) if Path(run).is_dir() else None
        if reason is not None:
            raise ConfigError(f"{reason} (analyze writes critical_points.csv there)")
    critical, finite_size = analyze_sweeps(args.run_dirs, n_boot=args.bootstrap)  # all read before any write
    cols = ["model", "corruption", "alpha_c_memorization", "alpha_c_memorization_lo",
            "alpha_c_memorization_hi", "alpha_c_validation", "transition"]
    for run, table in zip(args.run_dirs, critical):
        table.to_csv(Path(run) / "critical_points.csv", index=False)
        report.draw(run, critical=table)
        print(f"{run}:")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.finite_size_out:
        from qrobust.plots import plot_finite_size

        out = Path(args.finite_size_out)
        out.mkdir(parents=True, exist_ok=True)
        finite_size.to_csv(out / "finite_size.csv", index=False)
        plot_finite_size(finite_size, out / "finite_size.png")
        print(f"wrote {out}/finite_size.csv and {out}/finite_size.png")
    return 0


def _draw(args) -> list:
    """The study's figures, from its run directory (process 0 of a multi-host job only)."""
    from qrobust import report, sharding

    return report.draw(args.out) if sharding.is_primary() else []


def _landscape(args) -> int:
    from qrobust.experiments.landscape import LandscapeConfig, run_landscape

    config = LandscapeConfig(**_data_options(args), models=tuple(args.models or ("qnn", "mlp")),
                             alphas=parse_alphas(args.alphas), seeds=seed_range(args), epochs=args.epochs,
                             hutchinson_samples=args.hutchinson, n_eval=args.n_eval, simulator=_simulator(args))
    result = run_landscape(config, args.out, progress=not args.no_progress)
    _draw(args)
    stats = result[result.alpha > 0].groupby(["model", "alpha"]).ratio.agg(["mean", "std"])
    print(stats.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}/landscape.csv and {args.out}/landscape.png")
    return 0


def _detect(args) -> int:
    from qrobust.experiments.detection import DetectConfig, run_detection

    config = DetectConfig(**_data_options(args), models=tuple(args.models or ("qnn", "mlp")),
                          alphas=parse_alphas(args.alphas), seeds=seed_range(args), epochs=args.epochs,
                          corruption=args.corruption, folds=args.folds, baselines=not args.no_baselines,
                          simulator=_simulator(args))
    result = run_detection(config, args.out, progress=not args.no_progress)
    _draw(args)
    table = result.groupby(["detector", "alpha"])[["auroc", "auprc", "precision_at_k", "precision", "recall"]].mean()
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}/detection.csv and {args.out}/detection.png")
    return 0


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        print(f"qrobust: error: {exc} (qrobust --help, or qrobust COMMAND --help)", file=sys.stderr)
        return 2
    _logging(args)
    if args.command != "analyze":
        _compilation_cache()
    distributed = getattr(args, "distributed", False)
    if distributed:
        from qrobust.sharding import initialize_distributed

        initialize_distributed()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM (a batch scheduler's stop) ends a command as Ctrl-C does; the previous handler is restored after
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return {"sweep": _sweep, "gauge": _gauge, "unlearn": _unlearn, "analyze": _analyze,
                "landscape": _landscape, "detect": _detect, "reproduce": _reproduce,
                "report": _report}[args.command](args)
    except BaseException as exc:
        if distributed:  # the other processes stop at their next wait instead of hanging in it
            from qrobust.sharding import announce_failure

            announce_failure(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, QrobustError):
            print(f"qrobust: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, (KeyboardInterrupt, _Terminated)):
            signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
            print(f"qrobust: interrupted ({signal.Signals(signum).name}); the finished chunks are kept: rerun the "
                  "same command to resume", file=sys.stderr)
            return 128 + signum
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class _Terminated(BaseException):
    """SIGTERM (a batch scheduler's stop) inside a command: ends it as Ctrl-C does."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, _frame):
    raise _Terminated(signum)


if __name__ == "__main__":
    sys.exit(main())
