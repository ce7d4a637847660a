"""The ``qrobust`` command line. Thin: it parses, then calls the library."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from qrobust.errors import ConfigError, QrobustError


def parse_alphas(text: str) -> tuple[float, ...]:
    """'0:0.9:0.1' (inclusive range) or '0,0.3,0.5' -> alphas."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            values = np.arange(start, stop + step / 2, step)
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"cannot read alphas {text!r}: use START:STOP:STEP (e.g. 0:0.9:0.1) "
                          "or a comma list (e.g. 0,0.3,0.5)") from None
    return tuple(float(round(v, 10)) for v in values)


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrobust", description="Poisoning resilience of quantum and classical "
                                     "classifiers (Chen & Zhang, arXiv:2508.02422).")
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("sweep", help="noise-response sweep: model x corruption x alpha x seed, one program",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sw.add_argument("--dataset", default="mnist", help="mnist or xxz")
    sw.add_argument("--model", action="append", dest="models", help="qnn and/or mlp (repeat; default both)")
    sw.add_argument("--corruption", action="append", dest="corruptions",
                    help="flip and/or features (repeat; default both)")
    sw.add_argument("--alphas", default="0:0.9:0.1", help="START:STOP:STEP or a comma list")
    sw.add_argument("--seeds", type=int, default=5, help="number of seeds")
    sw.add_argument("--seed-offset", type=int, default=0, help="first seed")
    sw.add_argument("--epochs", type=int, help="override the paper's epochs")
    sw.add_argument("--batch-size", type=int, help="override the paper's batch size")
    sw.add_argument("--lr", type=float, action="append", dest="learning_rates",
                    help="learning rate; repeat for a learning-rate grid axis")
    sw.add_argument("--depth", type=int, help="QNN depth")
    sw.add_argument("--hidden", help="MLP hidden sizes, e.g. 64,16")
    sw.add_argument("--dtype", default="complex64", help="complex64 or complex128")
    sw.add_argument("--n-train", type=int, dest="n_train_per_class", help="training samples per class")
    sw.add_argument("--qubits", type=int, dest="n_qubits", help="spins of the XXZ chain (default 12)")
    sw.add_argument("--mnist-path", help="full MNIST: mnist.npz or a directory of IDX files")
    sw.add_argument("--chunk-size", type=int, help="replicas per compiled program")
    sw.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    sw.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _sweep(args) -> int:
    from qrobust.experiments.sweep import SweepConfig, run_sweep

    if args.seeds < 1 or args.seed_offset < 0:
        raise ConfigError(f"--seeds must be >= 1 and --seed-offset >= 0, got {args.seeds}, {args.seed_offset}")
    if args.dtype == "complex128":
        import jax

        jax.config.update("jax_enable_x64", True)  # asked for explicitly on the command line
    config = SweepConfig(
        dataset=args.dataset,
        models=tuple(args.models or ("qnn", "mlp")),
        corruptions=tuple(args.corruptions or ("flip", "features")),
        alphas=parse_alphas(args.alphas),
        seeds=tuple(range(args.seed_offset, args.seed_offset + args.seeds)),
        epochs=args.epochs, batch_size=args.batch_size,
        learning_rates=tuple(args.learning_rates) if args.learning_rates else None,
        depth=args.depth, hidden=parse_ints(args.hidden) if args.hidden else None,
        dtype=args.dtype, n_train_per_class=args.n_train_per_class, n_qubits=args.n_qubits,
        mnist_path=args.mnist_path, chunk_size=args.chunk_size,
    )
    start = time.perf_counter()
    run_sweep(config, args.out, progress=not args.no_progress)
    print(f"wrote {args.out}/results.csv, summary.csv, noise_response.png "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"sweep": _sweep}[args.command](args)
    except QrobustError as exc:
        print(f"qrobust: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
