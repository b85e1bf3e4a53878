"""Benchmark of the catalogue separator, side by side in one run (a benchmark, not a test).

    PYTHONPATH=. .venv/bin/python bench/separate.py [--minutes 1 10 60] [--repeat 2]

On a synthetic 3-minute stereo 44.1 kHz song (atsep.synth), each timed end to end through the same
per-track function the Beam job runs (decode -> separate -> encode wav stems -> plot -> track.json):
  (a) this project's model (model/bundled, or an untrained one of configs/default-model.json: the
      weights do not change the speed);
  (b) the same pipeline with the network replaced by a fixed mask: the I/O and DSP floor;
  (c) a Spleeter-2stems-sized U-Net (two U-Nets of 12 conv layers, 1024 bins x 512 frames, STFT
      4096/1024 at 44.1 kHz, ~20 M parameters, random weights) exported and run in the same harness.
Then the peak RSS of separating 1-, 10- and 60-minute songs, each in a fresh process.
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

REPO = Path(__file__).resolve().parent.parent
RATE = 44100
SONG_SECONDS = 180
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def spleeter_config():
    from model.config import Config

    return Config().replace(
        audio__sample_rate=RATE, stft__n_fft=4096, stft__hop=1024, stft__bins=1024,
        network__heads=("vocals", "accompaniment"), network__filters=(16, 32, 64, 128, 256, 512),
        network__patch_frames=512, network__dropout=0.0)


def spleeter_unet(config):
    """Spleeter's 2-stems network: one U-Net per stem (6 strided 5x5 convs, 6 transposed convs with
    skips, a dilated 4x4 sigmoid conv), ratio masks across the two stems."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, config.stft.bins, config.audio.channels), name="magnitude")
    masks = {}
    for stem in config.network.heads:
        x, skips = inputs, []
        for level, filters in enumerate(config.network.filters):
            x = layers.Conv2D(filters, 5, strides=2, padding="same", name=f"{stem}_conv{level}")(x)
            x = layers.BatchNormalization(name=f"{stem}_bn{level}")(x)
            x = layers.LeakyReLU(0.2)(x)
            skips.append(x)
        for level, filters in enumerate((256, 128, 64, 32, 16, 1)):
            if level:
                x = layers.Concatenate()([x, skips[-1 - level]])
            x = layers.Conv2DTranspose(filters, 5, strides=2, padding="same", name=f"{stem}_up{level}")(x)
            x = layers.BatchNormalization(name=f"{stem}_upbn{level}")(x)
            x = layers.ReLU()(x)
        masks[stem] = layers.Conv2D(config.audio.channels, 4, dilation_rate=2, padding="same",
                                    activation="sigmoid", name=f"{stem}_mask")(x)
    squares = {stem: layers.Lambda(lambda m: m * m)(mask) for stem, mask in masks.items()}
    total = layers.Add()(list(squares.values()))
    outputs = {stem: layers.Lambda(lambda pair: pair[0] / (pair[1] + 1e-10), name=stem)([square, total])
               for stem, square in squares.items()}
    return keras.Model(inputs, outputs, name="spleeter_2stems")


def export_models(folder: Path) -> tuple[Path, Path, int, int]:
    """(a)'s model folder and (c)'s, with their parameter counts."""
    from model.config import Config
    from model.export import export_model
    from model.unet import build_unet

    default = REPO / "model" / "bundled"
    if (default / "config.json").is_file():
        import tensorflow as tf

        project = default
        variables = tf.train.list_variables(str(default / "saved_model" / "variables" / "variables"))
        project_params = sum(int(np.prod(shape)) for name, shape in variables if "OBJECT_GRAPH" not in name)
    else:
        config = Config.from_json((REPO / "configs" / "default-model.json").read_text())
        model = build_unet(config)
        project, project_params = export_model(model, config, folder / "project"), model.count_params()
    config = spleeter_config()
    spleeter = spleeter_unet(config)
    spleeter_dir = export_model(spleeter, config, folder / "spleeter")
    return project, spleeter_dir, project_params, spleeter.count_params()


def fixed_mask_separator(model_dir: Path):
    """(b): the project's config and harness, the network replaced by constant masks."""
    from model.config import Config
    from model.separator import Separator

    config = Config.load(model_dir)
    share = 1.0 / (len(config.network.heads) + 1)

    def mask_fn(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        return {head: np.full(magnitude.shape, share, dtype=np.float32) for head in config.network.heads}

    return Separator(config, mask_fn, "fixed-mask")


def write_song(path: Path, seconds: float, synth: bool) -> None:
    """A stereo 44.1 kHz wav: atsep.synth's song, or (long songs) numpy tones and noise in blocks."""
    if synth:
        from atsep.synth import song_stems

        sf.write(path, song_stems(0, 0, int(seconds * RATE), RATE)["mixture"], RATE, subtype="PCM_16")
        return
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16") as out:
        for start in range(0, int(seconds * RATE), RATE * 10):
            t = (start + np.arange(min(RATE * 10, int(seconds * RATE) - start))) / RATE
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
            out.write(np.stack([tone, -tone], 1) + 0.05 * rng.standard_normal((len(t), 2)))


def time_track(separator, song: Path, out: Path, best: dict | None) -> dict:
    """One timed run; keeps the faster of it and `best`. CPU seconds are all threads of this process:
    less sensitive than wall time to other work on a shared machine."""
    from beam_jobs.outputs import OutputSettings
    from beam_jobs.separate_track import separate_track

    start, cpu = time.perf_counter(), time.process_time()
    record = separate_track(separator, "song", str(song), OutputSettings(str(out)))
    result = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
              "stages": record["timings_s"], "audio": record["duration_s"]}
    if best is None:
        return result
    return {**min(best, result, key=lambda r: r["seconds"]), "cpu": min(best["cpu"], result["cpu"])}


def rss_child(minutes: float, model_dir: str, song: str) -> None:
    """Run in a fresh process: separate one song, print peak RSS and speed as JSON."""
    from beam_jobs.outputs import OutputSettings
    from beam_jobs.separate_track import separate_track
    from model.separator import Separator

    separator = Separator.load(model_dir)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        record = separate_track(separator, "song", song, OutputSettings(out))
        seconds = time.perf_counter() - start
    # VmHWM, not getrusage's ru_maxrss: on Linux that keeps the peak of the forking parent across exec
    status = Path("/proc/self/status").read_text().splitlines()
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(json.dumps({"minutes": minutes, "peak_rss_mb": round(peak_mb), "seconds": round(seconds, 1),
                      "realtime": round(record["duration_s"] / seconds, 1)}))


def measure_rss(minutes: list[float], model_dir: Path, folder: Path) -> list[dict]:
    rows = []
    for length in minutes:
        song = folder / f"song-{length}min.wav"
        write_song(song, length * 60, synth=False)
        result = subprocess.run([sys.executable, __file__, "--rss-child", str(length), str(model_dir), str(song)],
                                env=ENV, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        song.unlink()
        print(f"  {length:g} min: peak RSS {rows[-1]['peak_rss_mb']} MB, {rows[-1]['realtime']}x realtime",
              flush=True)
    return rows


def table(results: dict, params: dict, rss: list[dict], load: str) -> str:
    names = {"a": "this project, end to end", "b": "fixed mask (I/O + DSP floor)",
             "c": "Spleeter-2stems-sized U-Net"}
    lines = [f"3-minute stereo 44.1 kHz song, decode -> wav stems + plot on disk; {os.cpu_count()} CPU cores, "
             f"load average before: {load}", "",
             "| run | model | parameters | wall s | x realtime | CPU s | x realtime per CPU s | stages (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for key, result in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items() if k not in ("check", "total"))
        count = f"{params[key] / 1e6:.1f} M" if params.get(key) else "-"
        lines.append(f"| {key} | {names[key]} | {count} | {result['seconds']:.1f} | "
                     f"{result['audio'] / result['seconds']:.1f} | {result['cpu']:.1f} | "
                     f"{result['audio'] / result['cpu']:.1f} | {stages} |")
    for measure in ("seconds", "cpu"):
        speed = {key: result["audio"] / result[measure] for key, result in results.items()}
        lines += ["", f"by {'wall' if measure == 'seconds' else 'CPU'} time: a/c = {speed['a'] / speed['c']:.2f} "
                  f"(goal >= 2)   a/b = {speed['a'] / speed['b']:.2f} (goal >= 0.5: a within 2x of b)"]
    if rss:
        lines += ["", "| song | peak RSS (MB) | x realtime |", "|---|---|---|"]
        lines += [f"| {row['minutes']:g} min | {row['peak_rss_mb']} | {row['realtime']} |" for row in rss]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 60], help="songs for peak RSS")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per model (the best is kept)")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(float(args.rss_child[0]), args.rss_child[1], args.rss_child[2])
        return 0
    from model.separator import Separator

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp:
        folder = Path(tmp)
        song = folder / "song.wav"
        write_song(song, SONG_SECONDS, synth=True)
        project, spleeter, project_params, spleeter_params = export_models(folder)
        separators = {"a": Separator.load(project), "b": fixed_mask_separator(project),
                      "c": Separator.load(spleeter)}
        for separator in separators.values():  # warm up: tracing, FFT plans, numba
            separator.separate(np.zeros((RATE * 4, 2), np.float32), RATE)
        results: dict = {}
        for attempt in range(args.repeat):  # interleaved, so a burst of other load hits all three alike
            for key, separator in separators.items():
                results[key] = time_track(separator, song, folder / key / str(attempt), results.get(key))
                print(f"  ({key}) {results[key]['seconds']:.1f} s", flush=True)
        rss = measure_rss(args.minutes, project, folder)
    print(table(results, {"a": project_params, "c": spleeter_params}, rss, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
