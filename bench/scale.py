"""Benchmark: does `atsep separate` stay flat as the catalogue grows? Per-song cost and peak memory at
two catalogue sizes of one-second songs, as ratios, and the Dataflow cost per million 3.5-minute songs.

    .venv/bin/python bench/scale.py [--sizes 100 1000] [--long_seconds 210]

Every run is a fresh `atsep separate` process with the bundled model on the default runner, measured
from outside: wall time, CPU time (user + system, its children included) and the peak resident memory
of every process it started (the largest ru_maxrss among them, read by a wrapper process that waits for
the job and nothing else). A one-song run gives the fixed start-up cost, so the per-song cost at N is
(run(N) - run(1)) / (N - 1): flat in N means a ratio near 1. The cost estimate divides the CPU seconds one
3.5-minute song takes (a warm run's, start-up subtracted) into the prices below, which are assumptions.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# Dataflow batch prices assumed (USD, us-central1 list prices per hour; check the pricing page for yours)
PRICE_VCPU_HOUR = 0.056
PRICE_GB_HOUR = 0.003557
PRICE_PD_GB_HOUR = 0.000054
MACHINE = {"name": "n2-highcpu-8", "vcpus": 8, "memory_gb": 8.0, "disk_gb": 25}  # separate's default: docs/cloud.md
RATE = 44100

# Runs the job as its only child, then prints that child's CPU time and the peak RSS among every process
# below it that was waited for (ru_maxrss of RUSAGE_CHILDREN: the largest single process, in KiB).
WRAPPER = """
import json, resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_mb": usage.ru_maxrss / 1024}))
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(100, 1000), help="the two catalogue sizes")
    parser.add_argument("--long_seconds", type=float, default=210.0, help="the song the cost estimate is for")
    return parser.parse_args(argv)


def write_songs(folder: Path, count: int, seconds: float, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    for index in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (110 + index % 50 * 11) * t)[:, None]
        sf.write(folder / f"song {index:05d}.wav",
                 (tone + 0.05 * rng.standard_normal((len(t), 2))).astype(np.float32), RATE, subtype="PCM_16")
    return folder


def separate(songs: Path, out: Path) -> dict:
    """One fresh `atsep separate` process over every song in the folder; its wall, CPU and peak RSS."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    atsep = str(Path(sys.executable).with_name("atsep"))
    done = subprocess.run([sys.executable, "-c", WRAPPER, atsep, "separate", str(songs), "-o", str(out)],
                          env=env, capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["code"] != 0:
        raise SystemExit(f"atsep separate failed on {songs}")
    summary = json.loads((out / "summary.json").read_text())
    return {**measured, "separated": summary["separated"], "failed": summary["failed"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    small, large = args.sizes
    with tempfile.TemporaryDirectory(prefix="atsep-scale-") as tmp:
        root = Path(tmp)
        runs = {}
        for count in (1, small, large):
            songs = write_songs(root / f"songs-{count}", count, 1.0)
            started = time.monotonic()
            runs[count] = separate(songs, root / f"out-{count}")
            assert runs[count]["separated"] == count and runs[count]["failed"] == 0, runs[count]
            print(f"{count:>5} songs: wall {runs[count]['wall']:7.1f} s, CPU {runs[count]['cpu']:7.1f} s, "
                  f"peak RSS {runs[count]['peak_mb']:6.0f} MB  ({time.monotonic() - started:.0f} s)", flush=True)
        long_song = write_songs(root / "long", 1, args.long_seconds, seed=1)
        long_run = separate(long_song, root / "out-long")
    fixed = runs[1]
    per_song = {n: {key: (runs[n][key] - fixed[key]) / (n - 1) for key in ("wall", "cpu")} for n in (small, large)}
    print(f"\nper song, start-up subtracted: {small} songs {per_song[small]['wall']:.3f} s wall / "
          f"{per_song[small]['cpu']:.3f} s CPU; {large} songs {per_song[large]['wall']:.3f} s wall / "
          f"{per_song[large]['cpu']:.3f} s CPU")
    print(f"ratio {large}/{small}: per-song wall {per_song[large]['wall'] / per_song[small]['wall']:.2f}, "
          f"per-song CPU {per_song[large]['cpu'] / per_song[small]['cpu']:.2f}, "
          f"peak RSS {runs[large]['peak_mb'] / runs[small]['peak_mb']:.2f} "
          f"({runs[small]['peak_mb']:.0f} -> {runs[large]['peak_mb']:.0f} MB)")
    cpu_per_song = long_run["cpu"] - fixed["cpu"]
    audio_per_cpu = args.long_seconds / cpu_per_song
    machine_hour = (MACHINE["vcpus"] * PRICE_VCPU_HOUR + MACHINE["memory_gb"] * PRICE_GB_HOUR
                    + MACHINE["disk_gb"] * PRICE_PD_GB_HOUR)
    vcpu_hours = 1e6 * cpu_per_song / 3600
    cost = vcpu_hours / MACHINE["vcpus"] * machine_hour
    print(f"\none {args.long_seconds:.0f} s song: {cpu_per_song:.1f} CPU s after start-up "
          f"({audio_per_cpu:.1f} audio s per CPU s), peak RSS {long_run['peak_mb']:.0f} MB")
    print(f"Dataflow, {MACHINE['name']} (${machine_hour:.3f}/h at ${PRICE_VCPU_HOUR}/vCPU-h, "
          f"${PRICE_GB_HOUR}/GB-h, ${PRICE_PD_GB_HOUR}/PD GB-h, {MACHINE['disk_gb']} GB disk): "
          f"{vcpu_hours:,.0f} vCPU-hours, about ${cost:,.0f} per million {args.long_seconds / 60:.1f}-minute songs "
          "(one vCPU's throughput taken as this machine's per CPU second)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
