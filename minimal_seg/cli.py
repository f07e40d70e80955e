"""The command line: ``python -m minimal_seg COMMAND``.

    gradcheck   float64 gradient check of every op, as a table
"""
from __future__ import annotations

import argparse
import sys


def _add_backend(parser):
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                        help="array backend (default: numpy, or $MINIMAL_SEG_BACKEND)")


def cmd_gradcheck(args) -> int:
    """Check every op of the catalogue; print op, options, tensor, max rel. error, pass/fail."""
    import numpy

    from .backend import asarray
    from .gradcheck import gradcheck
    from .op_catalogue import catalogue

    rows, failed = [], 0
    for i, (label, forward, backward, make_inputs, kwargs) in enumerate(catalogue()):
        rng = numpy.random.default_rng(args.seed + i)
        inputs = {k: asarray(v) if isinstance(v, numpy.ndarray) else v for k, v in make_inputs(rng).items()}
        report = gradcheck(forward, backward, inputs, kwargs, label=label, seed=args.seed + i)
        options = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "-"
        for _, tensor, err, _, verdict in report.rows():
            rows.append((label, options, tensor, f"{err:.1e}", verdict))
        failed += not report.passed
    widths = [max(len(str(r[c])) for r in rows + [("op", "options", "tensor", "max rel. error", "")]) for c in range(5)]
    header = ("op", "options", "tensor", "max rel. error", "result")
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"\n{len(rows) - 0} tensors checked in float64 (tol 1e-7): "
          f"{'all passed' if not failed else f'{failed} op(s) FAILED'}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg",
                                     description="Semantic segmentation from scratch in NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gradcheck", help="float64 gradient check of every op, printed as a table")
    p.add_argument("--seed", type=int, default=0)
    _add_backend(p)
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "backend", None):
        from .backend import BackendUnavailableError, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return args.func(args)
