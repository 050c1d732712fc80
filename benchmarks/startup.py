"""Start-up time of the command line: `python -m simulator --help`, `version` and
`serve --help` against `python -c pass`, the median of 5 runs each, and what `-X importtime`
says importing the CLI costs.

    .venv/bin/python benchmarks/startup.py [--runs 5]

Run it from the checkout whose package you want to time (`-m simulator` finds
the package in the current directory first).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROGRAMS = {
    "python -c pass": ["-c", "pass"],
    "python -m simulator --help": ["-m", "simulator", "--help"],
    "python -m simulator version": ["-m", "simulator", "version"],
    "python -m simulator serve --help": ["-m", "simulator", "serve", "--help"],
}


def wall_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cli_import_seconds(runs: int) -> float:
    """The cumulative figure -X importtime gives the `simulator.cli` package."""
    figures = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "simulator", "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            fields = line.split("|")
            if len(fields) == 3 and fields[2].strip() == "simulator.cli":
                figures.append(int(fields[1]) / 1e6)
    return statistics.median(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    baseline = wall_seconds(PROGRAMS["python -c pass"], runs)
    for name, args in PROGRAMS.items():
        seconds = baseline if args == ["-c", "pass"] else wall_seconds(args, runs)
        print(f"{name:34} {seconds:6.3f} s  {seconds / baseline:5.1f} x python -c pass")
    print(f"{'import simulator.cli':34} {cli_import_seconds(runs):6.3f} s  (-X importtime)")


if __name__ == "__main__":
    main()
