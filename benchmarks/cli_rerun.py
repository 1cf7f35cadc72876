"""``sktransfer embed``: a first run against rerunning it on its finished output.

    python benchmarks/cli_rerun.py [--repeats 3] [--quick] [--write-results [FILE]]

Each repeat runs ``python -m sktransfer embed FOLDER -o OUT -q`` as a new
process twice, side by side: once on a fresh ``OUT`` (every image
decoded and embedded by EfficientNet-Lite0, on the default engine) and once
more on the finished ``OUT``, which the command line finds up to date and
returns without decoding an image; and, beside them, a bare Python
start-up (``python -c pass``), the floor any command pays. Wall seconds of
each process, start-up and imports included, as a user would time the
command; the medians over the repeats and their ratios. A rerun of the
same request lists the folder, reads the table's recorded request and
rows with pyarrow, and stats the weights file: it imports neither torch
nor scikit-learn and builds no network.

Data: ``hymenoptera/train`` (244 photos) from the folder
``sktransfer.datasets.find_data_dir`` finds. ``--quick``: one repeat.
The exported-graph cache lives in a temporary folder, warmed by one run
before the timed ones, so no repeat pays for exporting the network.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _results

REPO = Path(__file__).resolve().parents[1]


def timed_embed(folder, out, env):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sktransfer", "embed", str(folder), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"embed failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, done.stdout.strip()


def timed_start_up(env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat: a smoke run")
    _results.add_argument(parser)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    from sktransfer.datasets import find_data_dir

    folder = Path(find_data_dir("hymenoptera", required=True)) / "hymenoptera" / "train"
    first, again, start_up = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "SKTRANSFER_CACHE": os.path.join(scratch, "cache"),
        }
        timed_embed(folder, Path(scratch, "warm.parquet"), env)  # exports the graph once
        for repeat in range(repeats):
            out = Path(scratch, f"run{repeat}.parquet")
            seconds, said = timed_embed(folder, out, env)
            assert "embedded now" in said, said
            first.append(seconds)
            seconds, said = timed_embed(folder, out, env)
            assert "is up to date" in said, said  # the rerun computed nothing
            again.append(seconds)
            start_up.append(timed_start_up(env))
            print(
                f"repeat {repeat + 1}: first run {first[-1]:.2f} s, rerun {again[-1]:.2f} s, "
                f"bare Python start-up {start_up[-1]:.2f} s",
                flush=True,
            )
    first_s, again_s, start_up_s = statistics.median(first), statistics.median(again), statistics.median(start_up)
    table = "\n".join(
        [
            f"`sktransfer embed` on hymenoptera/train (244 photos), EfficientNet-Lite0; median of {repeats} "
            "repeat(s), wall seconds of the whole process.",
            "",
            "| run | wall time |",
            "|---|---:|",
            f"| first run (embeds every photo) | {first_s:.2f} s |",
            f"| rerun on the finished table (up to date) | {again_s:.2f} s |",
            f"| bare Python start-up (`python -c pass`) | {start_up_s:.2f} s |",
            f"| rerun beyond Python start-up | {again_s - start_up_s:.2f} s |",
            f"| rerun / first run | {again_s / first_s:.3f} |",
        ]
    )
    print(table)
    _results.write(args.write_results, "Rerunning `sktransfer embed`", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
