"""Benchmark of `atsep preprocess`: audio-seconds per CPU-second, 1 and 2 workers, two catalogue sizes.

    PYTHONPATH=. .venv/bin/python bench/preprocess.py [--songs 4 8] [--seconds 30]

Each run is a fresh process (the cost a user pays, imports included) over generated `.stem.mp4`
songs; CPU seconds are the run's user + system time, children (ffmpeg) included. The marginal cost
between the two sizes shows whether cost grows linearly with the catalogue.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, nargs=2, default=(4, 8), help="the two catalogue sizes")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each generated song")
    parser.add_argument("--workers", type=int, nargs="+", default=(1, 2))
    return parser.parse_args(argv)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_preprocess(songs: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one preprocess run in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "atsep", "preprocess", "--input", str(songs), "--output", str(out),
               "--direct_running_mode", "multi_threading", "--direct_num_workers", str(workers)]
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=REPO, capture_output=True)
    return time.perf_counter() - wall, children_cpu() - cpu


def main(argv: list[str] | None = None) -> int:
    from atsep import synth

    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        for count in args.songs:
            songs = Path(tmp) / f"songs-{count}"
            synth.generate(songs, count, seed=1, seconds=args.seconds, test_count=0)
            audio = count * args.seconds
            for workers in args.workers:
                wall, cpu = run_preprocess(songs, Path(tmp) / f"out-{count}-{workers}", workers)
                rows.append((count, audio, workers, wall, cpu))
    print(f"{'songs':>5} {'audio s':>8} {'workers':>7} {'wall s':>7} {'CPU s':>7} {'audio s/CPU s':>13} "
          f"{'audio s/wall s':>14}")
    for count, audio, workers, wall, cpu in rows:
        print(f"{count:>5} {audio:>8.0f} {workers:>7} {wall:>7.1f} {cpu:>7.1f} {audio / cpu:>13.2f} {audio / wall:>14.2f}")
    small, large = min(args.songs), max(args.songs)
    for workers in args.workers:
        (a_small, c_small), (a_large, c_large) = [
            (audio, cpu) for count, audio, w, _, cpu in rows if w == workers and count in (small, large)]
        marginal = (c_large - c_small) / (a_large - a_small)
        print(f"workers={workers}: marginal CPU per audio second {marginal:.3f} s "
              f"(size x{large / small:.1f} -> CPU x{c_large / c_small:.2f}; fixed start-up cost "
              f"~{c_small - marginal * a_small:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
