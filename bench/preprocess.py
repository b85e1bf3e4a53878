"""Benchmark of `atsep preprocess`: audio-seconds per CPU-second, the job's local mode (in_memory) against
multi_threading on both cores, two catalogue sizes.

    PYTHONPATH=. .venv/bin/python bench/preprocess.py [--songs 4 8] [--seconds 30]

Each run is a fresh process (the cost a user pays, imports included) over generated `.stem.mp4`
songs; CPU seconds are the run's user + system time, children (ffmpeg) included. The marginal cost
between the two sizes shows whether cost grows linearly with the catalogue. A multi_threading run can
fail with records lost in Beam's data plane (beam_jobs/options.py): it is then reported, not timed.
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
    parser.add_argument("--modes", nargs="+", default=("in_memory", "multi_threading"),
                        help="--direct_running_mode values (in_memory: one worker; multi_threading: every core)")
    return parser.parse_args(argv)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_preprocess(songs: Path, out: Path, mode: str) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds) of one preprocess run in a fresh process; None if the run failed."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "atsep", "preprocess", "--input", str(songs), "--output", str(out),
               "--direct_running_mode", mode, "--direct_num_workers", "1" if mode == "in_memory" else "0"]
    cpu, wall = children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        print(f"{mode}, {songs.name}: failed: {done.stderr.strip().splitlines()[-2:]}")
        return None
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
            for mode in args.modes:
                timed = run_preprocess(songs, Path(tmp) / f"out-{count}-{mode}", mode)
                if timed:
                    rows.append((count, audio, mode, *timed))
    print(f"{'songs':>5} {'audio s':>8} {'mode':>15} {'wall s':>7} {'CPU s':>7} {'audio s/CPU s':>13} "
          f"{'audio s/wall s':>14}")
    for count, audio, mode, wall, cpu in rows:
        print(f"{count:>5} {audio:>8.0f} {mode:>15} {wall:>7.1f} {cpu:>7.1f} {audio / cpu:>13.2f} {audio / wall:>14.2f}")
    small, large = min(args.songs), max(args.songs)
    for mode in args.modes:
        runs = {count: (audio, cpu) for count, audio, m, _, cpu in rows if m == mode}
        if small not in runs or large not in runs:
            continue
        (a_small, c_small), (a_large, c_large) = runs[small], runs[large]
        marginal = (c_large - c_small) / (a_large - a_small)
        print(f"{mode}: marginal CPU per audio second {marginal:.3f} s "
              f"(size x{large / small:.1f} -> CPU x{c_large / c_small:.2f}; fixed start-up cost "
              f"~{c_small - marginal * a_small:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
