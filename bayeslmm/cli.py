"""The ``bayeslmm`` command: fit a formula by REML and NUTS and print both side by side.

bayeslmm fit "Reaction ~ Days + (Days | Subject)" --dataset sleepstudy
bayeslmm datasets
bayeslmm fit "Reaction ~ Days + (Days | Subject)" --dataset sleepstudy --report r.html
bayeslmm explain "Reaction ~ Days + (Days | Subject)" --dataset sleepstudy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import numpy as np
import pandas as pd

from .compare import compare
from .datasets import list_datasets, load_dataset
from .errors import BayesLMMError, DataError
from .model import Model

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.figure import Figure

_PLOTS = ("shrinkage", "compare", "group-fits")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value}")
    return value


class _UsageError(Exception):
    """A command-line argument error, reported like every other error: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print the usage and exit
        raise _UsageError(message)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"bayeslmm: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayeslmm",
        description="Linear mixed models in lme4 syntax: REML and NUTS side by side.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--dataset", help="a bundled dataset (see `bayeslmm datasets`)")
        src.add_argument("--data", type=Path, help="a CSV or Parquet file")

    fit = sub.add_parser("fit", help="fit by REML and/or NUTS and compare")
    data_args(fit)
    fit.add_argument("--method", choices=["reml", "bayes", "both"], default="both")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--draws", type=_positive_int, default=1000)
    fit.add_argument("--tune", type=_positive_int, default=1000)
    fit.add_argument("--chains", type=_positive_int, default=4)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--target-accept", type=_probability, default=None)
    fit.add_argument("--save", type=Path, help="save the posterior (netCDF) to this path")
    fit.add_argument("--save-fit", type=Path, help="save the REML fit (JSON) to this path")
    for name in _PLOTS:
        fit.add_argument(f"--plot-{name}", type=Path, metavar="PNG", help=f"write the {name} plot")
    fit.add_argument("--plot", type=Path, metavar="PNG", help="alias of --plot-shrinkage")
    fit.add_argument("--json", action="store_true", help="machine-readable output")
    fit.add_argument(
        "--report", type=Path, metavar="HTML", help="write a self-contained HTML report"
    )

    sub.add_parser("datasets", help="list the bundled datasets")

    explain = sub.add_parser(
        "explain", help="print the model's generative story (with its REML estimates)"
    )
    data_args(explain)
    explain.add_argument(
        "--symbols", action="store_true", help="symbols only: do not fit the model"
    )
    return parser


def _read_data(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    if args.dataset:
        return load_dataset(args.dataset), args.dataset
    path: Path = args.data
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path), path.name
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), path.name
    except (ValueError, OSError, ImportError) as exc:
        raise DataError(f"cannot read '{path}': {exc}") from None
    raise DataError(f"data file '{path}' must be .csv or .parquet")


def _records(df: pd.DataFrame) -> list[dict]:
    clean = df.reset_index().astype(object).where(df.reset_index().notna(), None)
    return json.loads(clean.to_json(orient="records", default_handler=str))


def _fit(args: argparse.Namespace) -> int:
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise BayesLMMError(f"--report '{args.report}' must end in .html")
    data, name = _read_data(args)
    model = Model(args.formula, data)
    fit = posterior = None
    out: dict = {"formula": args.formula, "data": name, "nobs": model.nobs}
    if args.method in ("reml", "both"):
        fit = model.fit_reml(reml=not args.ml)
        if args.save_fit:
            fit.save(args.save_fit)
        if args.json:
            out["reml"] = fit.to_dict()
        else:
            print(fit.summary())
            print()
    if args.method in ("bayes", "both"):
        options = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
        if args.target_accept is not None:
            options["target_accept"] = args.target_accept
        posterior = model.sample(progressbar=not args.json, **options)
        if args.save:
            posterior.save(args.save)
        if args.json:
            out["posterior"] = {
                "fixef": _records(posterior.fixef),
                "varcorr": _records(posterior.varcorr),
                "diagnostics": dataclasses.asdict(posterior.diagnostics),
            }
        else:
            print(posterior.summary())
            print()
    if args.json:  # the side-by-side table (profile intervals: seconds) only where shown
        out["compare"] = _records(compare(fit, posterior))
        print(json.dumps(out, indent=2, default=_jsonable))
    elif fit is not None and posterior is not None:
        print("REML vs posterior")
        print(compare(fit, posterior))
    plots = {
        "shrinkage": args.plot_shrinkage or args.plot,
        "compare": args.plot_compare,
        "group-fits": args.plot_group_fits,
    }
    for kind, path in plots.items():
        if path is not None:
            from .plots import plot_compare, plot_group_fits, plot_shrinkage  # matplotlib

            makers: dict[str, Callable[..., Figure]] = {
                "shrinkage": plot_shrinkage,
                "compare": plot_compare,
                "group-fits": plot_group_fits,
            }
            figure = makers[kind](fit, posterior)
            figure.savefig(path, dpi=110, bbox_inches="tight")
            print(f"wrote {path}", file=sys.stderr)
    if args.report is not None:
        from .report import report  # matplotlib

        report(fit, posterior, args.report, seed=args.seed, data_name=name)
        print(f"wrote {args.report}", file=sys.stderr)
    return 0


def _explain(args: argparse.Namespace) -> int:
    """The story the HTML report tells: REML estimates and the model's priors."""
    data, _ = _read_data(args)
    model = Model(args.formula, data)
    print(model.explain(None if args.symbols else model.fit_reml(), priors=True))
    return 0


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayeslmm`` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"bayeslmm: error: {exc} (see bayeslmm --help)", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", DeprecationWarning)  # library internals, not the user's
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "datasets":
            print(list_datasets().to_string())
            return 0
        if args.command == "explain":
            return _explain(args)
        return _fit(args)
    except Exception as exc:  # one clear line, never a traceback (unless --debug)
        if args.debug:
            raise
        kind = (
            "error" if isinstance(exc, BayesLMMError) else f"internal error ({type(exc).__name__})"
        )
        print(f"bayeslmm: {kind}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
