"""The ``qrobust`` command line. Thin: it parses, then calls the library.

Every study of ``qrobust.experiments.registry`` is a command; its options are its config's fields, declared
once where the field is (``qrobust.options``), listed by group in ``qrobust COMMAND --help``. Only the options
given reach the config, so every default is the library's own. Besides the studies: ``reproduce`` (every
experiment of the paper, then its report), ``report`` (re-write a reproduction's report) and ``analyze`` (a
sweep's critical points), ``merge`` (runs split by seed, into one). ``qrobust --help`` imports no study (and no JAX); ``qrobust COMMAND ...`` imports its
study only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from qrobust.errors import ConfigError, QrobustError

from qrobust.options import MAX_SEEDS  # seeds per run (a row per replica per recorded epoch is kept in memory)
_OTHER_COMMANDS = {"reproduce": "every experiment of the paper, then its report (OUT/report.html)",
                   "report": "(re)write the report of a reproduction directory, without training",
                   "analyze": "critical point of a sweep: fits, intervals, figure",
                   "merge": "merge runs split by seed (--seed-offset) into one run directory"}


class _Help(argparse.HelpFormatter):
    """Wider help columns."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=110)


class _Parser(argparse.ArgumentParser):
    """Usage errors as every other error: one line "qrobust: error: ...", exit status 2, no usage dump."""

    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qrobust")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _verbosity(parser: argparse.ArgumentParser, top: bool) -> None:
    """-v and -q, on the top parser and on every command (so they work before or after it)."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more messages (the kernel build, chunk plans); -vv for debugging")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="errors only")


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _typed(parse):
    """``parse`` as an argparse type: its message (a QrobustError's) is the error's, after the flag's name."""
    def convert(text: str):
        try:
            return parse(text)
        except QrobustError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _add_option(group, name: str, opt, default) -> None:
    """One config field's flag(s) (``qrobust.options.Option``) on ``group``."""
    from qrobust.options import flag_of

    text = opt.help
    if default not in (None, False, True, ()) and "default" not in text and not opt.switch:
        text += f" (default: {_shown(default)})"
    flag = flag_of(name, opt)
    kwargs = dict(dest=name, default=argparse.SUPPRESS, help=text)
    if opt.switch:
        group.add_argument(flag, action="store_const", const=not default, **kwargs)
    else:
        kwargs.update(action="append" if opt.repeat else "store",
                      metavar=opt.metavar or flag.lstrip("-").upper().replace("-", "_"))
        if opt.parse is not None:
            kwargs["type"] = _typed(opt.parse)
        if opt.choices is not None and opt.parse is None:
            kwargs["choices"] = opt.choices
        if opt.nargs is not None:
            kwargs.update(nargs=opt.nargs, const=opt.const)
        if opt.choices is not None and opt.metavar is None and opt.parse is None:
            kwargs.pop("metavar")
        group.add_argument(flag, **kwargs)
    for i, (flag, help_text, parse) in enumerate(opt.extra):
        group.add_argument(flag, dest=f"{name}__extra{i}", type=_typed(parse), default=argparse.SUPPRESS, help=help_text,
                           metavar=flag.lstrip("-").upper().replace("-", "_"))


def _study_parser(sub, entry) -> None:
    """The command of study ``entry`` (``qrobust.experiments.registry.Study``): its config's options by group,
    and --out, --no-progress, --seed-offset, --distributed."""
    from qrobust.options import GROUPS, options_of

    p = sub.add_parser(entry.command, help=entry.help, description=entry.help, formatter_class=_Help)
    _verbosity(p, top=False)
    groups = {g: p.add_argument_group(f"{g} options") for g in GROUPS}
    for name, opt, default in options_of(entry.get("config")):
        _add_option(groups[opt.group], name, opt, default)
    run = groups["run"]
    run.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress line")
    run.add_argument("--seed-offset", type=int, default=0, help="the first seed of a count given with --seeds")
    run.add_argument("--distributed", action="store_true",
                     help="one process per host: join the job (jax.distributed.initialize, settings from the "
                          "cluster's environment or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) and "
                          "share the chunks; --out must be on a shared file system")


def _other_parser(sub, command: str) -> None:
    from qrobust.experiments.reproduce import PART_NAMES, PROFILES

    p = sub.add_parser(command, help=_OTHER_COMMANDS[command], description=_OTHER_COMMANDS[command],
                       formatter_class=_Help)
    _verbosity(p, top=False)
    if command == "reproduce":
        p.add_argument("--out", required=True, help="the reproduction's directory (resumes where it stopped)")
        p.add_argument("--quick", action="store_true",
                       help="fewer seeds and sizes, chosen so every finding still shows in minutes on 2 CPU cores")
        p.add_argument("--profile", choices=PROFILES, help=argparse.SUPPRESS)  # tiny: the tests'
        p.add_argument("--part", action="append", dest="parts", choices=PART_NAMES,
                       help="run only this part (repeat; default all)")
        p.add_argument("--no-progress", action="store_true", help="no progress lines")
        p.add_argument("--no-plan", action="store_true",
                       help="let each part train its own replicas (default: the union the parts declare is trained "
                            "first, once, one program per shape; the parts read it back)")
    elif command == "report":
        p.add_argument("run_dir", help="a directory of qrobust reproduce")
    elif command == "merge":
        p.add_argument("out", help="the merged run directory (new)")
        p.add_argument("runs", nargs="+", help="finished runs of one study whose settings differ only in their seeds")
    else:
        p.add_argument("run_dirs", nargs="+", help="sweep output directories")
        p.add_argument("--finite-size-out", help="with several runs: where to write finite_size.csv and .png")


def _command_in(argv) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser; a command's options are built only for the command named in ``argv`` (every command's when
    ``argv`` is None), so ``qrobust --help`` and ``--version`` import no study."""
    from qrobust.experiments import registry

    parser = _Parser(prog="qrobust", description="Poisoning resilience of quantum and classical classifiers "
                                                 "(Chen & Zhang, arXiv:2508.02422).", formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"qrobust {_version()}")
    _verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    wanted = None if argv is None else _command_in(argv) or ""
    for name in registry.names():
        entry = registry.study(name)
        if wanted in (None, entry.command):
            _study_parser(sub, entry)
        else:
            sub.add_parser(entry.command, help=entry.help)
    for command in _OTHER_COMMANDS:
        if wanted in (None, command):
            _other_parser(sub, command)
        else:
            sub.add_parser(command, help=_OTHER_COMMANDS[command])
    return parser


def _seeds(value, offset: int):
    """--seeds (a count, from --seed-offset, or the seeds themselves)."""
    if offset < 0:
        raise ConfigError(f"--seed-offset must be >= 0, got {offset}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"--seeds must be >= 1, got {value}")
        if value > MAX_SEEDS:
            raise ConfigError(f"--seeds {value:,} is more than {MAX_SEEDS:,} seeds in one run; its result rows would "
                              "not fit in memory: split the seeds over runs with --seed-offset")
        return tuple(range(offset, offset + value))
    if offset:
        raise ConfigError("--seed-offset applies to a count of seeds (--seeds N), not to a list of them")
    return value


def config_of(entry, args):
    """The study config the options in ``args`` ask for (only the options given; every other field its
    default)."""
    from qrobust.options import options_of

    given = vars(args)
    kwargs = {}
    for name, opt, default in options_of(entry.get("config")):
        extras = {flag: given.get(f"{name}__extra{i}") for i, (flag, _, _) in enumerate(opt.extra)}
        if name not in given and not any(v is not None for v in extras.values()):
            continue
        value = given.get(name, default)
        if opt.repeat and isinstance(value, list):
            value = tuple(value)
        if opt.combine is not None:
            value = opt.combine(value, extras)
        kwargs[name] = value
    if "seeds" in kwargs or args.seed_offset:
        default = next(d for n, _, d in options_of(entry.get("config")) if n == "seeds")
        kwargs["seeds"] = _seeds(kwargs.get("seeds", len(default)), args.seed_offset)
    if kwargs.get("dtype") == "complex128":  # asked for explicitly: JAX's 64-bit mode, which it needs
        import jax

        jax.config.update("jax_enable_x64", True)
    return entry.get("config")(**kwargs)


def _run_study(entry, args) -> int:
    from qrobust import report, sharding
    from qrobust.results import load_results

    config = config_of(entry, args)
    start = time.perf_counter()
    entry.get("run")(config, args.out, progress=not args.no_progress)
    if not sharding.is_primary():
        return 0
    figures = report.draw(args.out)
    table = report.summary(load_results(args.out))
    if table is not None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    written = [t for t in entry.tables if (Path(args.out) / t).is_file()] + [f.name for f in figures]
    print(f"wrote {args.out}: {', '.join(written)} in {time.perf_counter() - start:.1f} s")
    return 0


def _reproduce(args) -> int:
    from qrobust.experiments.reproduce import run_reproduce

    profile = args.profile or ("quick" if args.quick else "full")
    start = time.perf_counter()

    def done(part, seconds):
        print(f"{part.name}: {seconds:.0f} s", flush=True)

    run_reproduce(args.out, profile=profile, parts=args.parts, progress=not args.no_progress, on_part=done,
                  plan=not args.no_plan)
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
    from qrobust import report
    from qrobust.analysis.critical import analyze_sweeps
    from qrobust.files import atomic_write_text, unwritable
    from qrobust.results import load_sweeps

    if len(args.run_dirs) > 1 and not args.finite_size_out:
        raise ConfigError("several runs make a finite-size table: say where with --finite-size-out DIR")
    if args.finite_size_out:
        reason = unwritable(Path(args.finite_size_out))
        if reason is not None:
            raise ConfigError(f"--finite-size-out {args.finite_size_out}: {reason}")
    for run in args.run_dirs:
        reason = unwritable(Path(run)) if Path(run).is_dir() else None
        if reason is not None:
            raise ConfigError(f"{reason} (analyze writes critical_points.csv there)")
    critical, finite_size = analyze_sweeps(load_sweeps(args.run_dirs))  # all read first
    cols = ["model", "corruption", "alpha_c_memorization", "alpha_c_memorization_lo",
            "alpha_c_memorization_hi", "alpha_c_validation", "transition"]
    for run, table in zip(args.run_dirs, critical):
        atomic_write_text(Path(run) / "critical_points.csv", table.to_csv(index=False))
        report.draw(run, critical=table)
        print(f"{run}:")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.finite_size_out:
        from qrobust.plots import plot_finite_size

        out = Path(args.finite_size_out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "finite_size.csv", finite_size.to_csv(index=False))
        plot_finite_size(finite_size, out / "finite_size.png")
        print(f"wrote {out}/finite_size.csv and {out}/finite_size.png")
    return 0


def _merge(args) -> int:
    from qrobust import report
    from qrobust.experiments.merge import merge_runs
    from qrobust.results import load_results

    start = time.perf_counter()
    written = merge_runs(args.out, args.runs)
    figures = report.draw(args.out)
    table = report.summary(load_results(args.out))
    if table is not None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"merged {len(args.runs)} runs into {args.out}: {', '.join(written + [f.name for f in figures])} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


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


def _handler(command: str):
    from qrobust.experiments import registry

    entry = registry.by_command(command)
    if entry is not None:
        return lambda args: _run_study(entry, args)
    return {"reproduce": _reproduce, "report": _report, "analyze": _analyze, "merge": _merge}[command]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except _UsageError as exc:
        print(f"qrobust: error: {exc} (qrobust --help, or qrobust COMMAND --help)", file=sys.stderr)
        return 2
    except QrobustError as exc:  # an option's value that does not parse
        print(f"qrobust: error: {exc}", file=sys.stderr)
        return 2
    _logging(args)
    distributed = getattr(args, "distributed", False)
    if distributed and getattr(args, "claim", False):
        print("qrobust: error: --claim and --distributed are two ways of sharing the chunks (claimed by independent "
              "processes, or dealt out by a coordinator): choose one", file=sys.stderr)
        return 2
    if distributed:
        from qrobust.sharding import initialize_distributed

        initialize_distributed()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM (a batch scheduler's stop) ends a command as Ctrl-C does; the previous handler is restored after
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _handler(args.command)(args)
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
