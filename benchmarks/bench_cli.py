"""Command-line start-up and report time against a bare ``import pandas, scipy.linalg``.

Run: ``python benchmarks/bench_cli.py [--repeats 5] [--write docs/benchmarks.md]``.

Every measurement is a fresh process (interpreter start and imports included), wall time,
median of ``--repeats``; the rounds interleave the commands so that a change of load on a
shared machine hits all of them alike. The last rows time ``blm.report`` alone for
sleepstudy (REML fit and a posterior of 4 x 1000 draws made before the clock starts): wall
time and the process's CPU time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

from _report import replace_section

ROOT = Path(__file__).resolve().parent.parent
FORMULA = "Reaction ~ Days + (Days | Subject)"
COMMANDS = {
    'python -c "import pandas, scipy.linalg"': ["-c", "import pandas, scipy.linalg"],
    "bayeslmm fit ... --method reml": [
        "-m",
        "bayeslmm.cli",
        "fit",
        FORMULA,
        "--dataset",
        "sleepstudy",
        "--method",
        "reml",
    ],
    "bayeslmm explain ...": ["-m", "bayeslmm.cli", "explain", FORMULA, "--dataset", "sleepstudy"],
}
REPORT = f"""
import time, tempfile, warnings
import bayeslmm as blm
model = blm.Model("{FORMULA}", blm.load_dataset("sleepstudy"))
fit = model.fit_reml()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    post = model.sample(draws=1000, chains=4, seed=1, progressbar=False)
t0, c0 = time.perf_counter(), time.process_time()
blm.report(fit, post, tempfile.mktemp(suffix=".html"))
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def _wall(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, help="update this markdown file's section")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            times[name].append(_wall(argv))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", REPORT], check=True, capture_output=True, text=True, env=env
        ).stdout.split()[-2:]
        for _ in range(3)
    ]
    report, report_cpu = ([float(r[i]) for r in runs] for i in (0, 1))
    base = median(times[next(iter(COMMANDS))])
    load = os.getloadavg()[0]
    lines = [
        "## Command-line start-up and the HTML report",
        "",
        f"`python benchmarks/bench_cli.py --repeats {args.repeats}`: fresh processes, wall "
        f"time, median of {args.repeats} (load average {load:.2f} on a shared 2-core machine).",
        "",
        "| command | median s | × bare import |",
        "|---|---:|---:|",
        *(f"| `{n}` | {median(t):.2f} | {median(t) / base:.2f} |" for n, t in times.items()),
        f"| `blm.report(fit, posterior, path)` (after the fit, median of 3) "
        f"| {median(report):.2f} | |",
        f"| the same, CPU time of the process (what an idle machine would wait) "
        f"| {median(report_cpu):.2f} | |",
        "",
        "The report's time includes its first-use imports (matplotlib, scipy.stats) in a "
        "fresh process; on a loaded machine its wall time grows with the bare import's.",
    ]
    print("\n".join(lines))
    if args.write:
        replace_section(args.write, "cli", lines)


if __name__ == "__main__":
    main()
