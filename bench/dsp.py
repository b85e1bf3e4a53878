"""Benchmark of the separator's transforms against librosa's and against the bare FFTs, side by side.

    PYTHONPATH=. .venv/bin/python bench/dsp.py [--repeat 3]

Per 3-minute stereo 44.1 kHz song, in the shapes the separator uses (segments of 127 hops of 1024 at
n_fft 4096, 25% overlap: 58 segments; the STFT of the 2 input channels, the ISTFT of 2 heads x 2
channels, and the masking of 2 heads), CPU seconds of:
  librosa   librosa.stft / librosa.istft (what model/dsp.py called before) and spec * extend_mask;
  project   model/dsp.py's stft / istft and mask_spec;
  fft       scipy.fft's rfft / irfft of the same frames, nothing around them: the floor.
The fastest of --repeat runs is kept; the machine's other load moves all three alike.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.fft

from model import dsp

N_FFT, HOP, FRAMES, BINS = 4096, 1024, 128, 512
SEGMENTS = 58  # a 3-minute song's segments of (FRAMES - 1) * HOP samples with 25% overlap
HEADS, CHANNELS = 2, 2


def librosa_stft(waveform: np.ndarray) -> np.ndarray:
    import librosa

    spec = librosa.stft(np.ascontiguousarray(waveform.T), n_fft=N_FFT, hop_length=HOP, window="hann", center=True)
    return np.transpose(spec, (2, 1, 0)).astype(np.complex64, copy=False)


def librosa_istft(spec: np.ndarray, length: int) -> np.ndarray:
    import librosa

    waveform = librosa.istft(np.transpose(spec, (2, 1, 0)), n_fft=N_FFT, hop_length=HOP, window="hann",
                             center=True, length=length)
    return waveform.T.astype(np.float32, copy=False)


def cpu_seconds(work, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(SEGMENTS):
            work()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    length = (FRAMES - 1) * HOP
    waveform = rng.uniform(-1, 1, (length, CHANNELS)).astype(np.float32)
    spec = dsp.stft(waveform, N_FFT, HOP)
    mask = rng.uniform(0, 1, (FRAMES, BINS, CHANNELS)).astype(np.float32)
    heads = np.transpose(np.stack([np.transpose(spec, (2, 0, 1))] * HEADS), (2, 3, 0, 1)).reshape(
        FRAMES, spec.shape[1], HEADS * CHANNELS)  # the stacked heads, channels first in memory
    frames = rng.standard_normal((FRAMES * CHANNELS, N_FFT)).astype(np.float32)
    spectra = scipy.fft.rfft(frames, axis=-1)
    librosa_istft(heads, length)  # librosa's first call compiles with numba
    rows = {
        "STFT": (lambda: librosa_stft(waveform), lambda: dsp.stft(waveform, N_FFT, HOP),
                 lambda: scipy.fft.rfft(frames, axis=-1)),
        "ISTFT": (lambda: librosa_istft(heads, length), lambda: dsp.istft(heads, N_FFT, HOP, length),
                  lambda: [scipy.fft.irfft(spectra, n=N_FFT, axis=-1) for _ in range(HEADS)]),
        "masking": (lambda: [spec * dsp.extend_mask(mask, spec.shape[1]) for _ in range(HEADS)],
                    lambda: [dsp.mask_spec(spec, mask) for _ in range(HEADS)], None),
    }
    print(f"CPU s per 3-minute song ({SEGMENTS} segments of {FRAMES} frames, n_fft {N_FFT}), fastest of {args.repeat}")
    print("| step | librosa (before) | project | bare FFT | before / project | project / FFT |")
    print("|---|---|---|---|---|---|")
    for name, (before, project, fft) in rows.items():
        times = [cpu_seconds(work, args.repeat) if work else float("nan") for work in (before, project, fft)]
        print(f"| {name} | {times[0]:.2f} | {times[1]:.2f} | {times[2]:.2f} | {times[0] / times[1]:.1f} | "
              f"{times[1] / times[2]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
