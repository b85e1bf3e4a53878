"""Spleeter 2.4.2's own 2stems separation, timed in memory: the peer run by bench/separate.py.

    .venv-spleeter/bin/python bench/spleeter_peer.py SONG.wav [--repeat 2]

Runs in Spleeter's own venv (bench/separate.py creates it: tensorflow 2.12.1, numpy 1.23.5, jax 0.4.13).
The graph is Spleeter's real one, built from its packaged 2stems.json through its EstimatorSpecBuilder
(its TF STFT, the two U-Nets, ratio masks, mask extension, its TF inverse STFT) with random weights:
nothing is downloaded, and the weights do not change the speed. One session is reused, as a long-running
Spleeter process would; the waveform is fed from memory, so the times hold no file I/O. Prints one JSON
line: the song's seconds, and the fastest wall and CPU seconds of the timed runs after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import time
import wave

import numpy as np


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """A 16-bit PCM wav -> float32 [samples, channels] (the standard library: Spleeter's venv has no
    soundfile, and its own loader goes through an ffmpeg subprocess, which is file I/O)."""
    with wave.open(path) as song:
        frames = song.readframes(song.getnframes())
        channels, rate = song.getnchannels(), song.getframerate()
    return np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0, rate


def build(params: dict):
    """Spleeter's predict graph for `params` with randomly initialised variables, in a new session."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder, InputProviderFactory

    graph = tf.Graph()
    with graph.as_default():
        features = InputProviderFactory.get(params).get_input_dict_placeholders()
        outputs = EstimatorSpecBuilder(features, {**params, "MWF": False}).outputs
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    heads = {name: tensor for name, tensor in outputs.items() if name != "audio_id"}
    return lambda waveform: session.run(heads, {features["waveform"]: waveform, features["audio_id"]: "song"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", help="16-bit PCM wav at 44.1 kHz, stereo")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs (the fastest is kept)")
    args = parser.parse_args(argv)
    from spleeter.utils.configuration import load_configuration

    params = load_configuration("spleeter:2stems")
    waveform, rate = read_wav(args.song)
    if rate != params["sample_rate"]:
        raise SystemExit(f"{args.song}: {rate} Hz, Spleeter's 2stems model runs at {params['sample_rate']} Hz")
    separate = build(params)
    separate(waveform[: rate * 4])  # warm-up: the first session.run prunes and places the graph
    wall, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        stems = separate(waveform)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert all(stem.shape == waveform.shape for stem in stems.values()), {k: v.shape for k, v in stems.items()}
    print(json.dumps({"audio": waveform.shape[0] / rate, "seconds": min(wall), "cpu": min(cpu)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
