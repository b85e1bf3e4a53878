"""Benchmark of the catalogue separator, side by side in one run (a benchmark, not a test).

    PYTHONPATH=. .venv/bin/python bench/separate.py [--minutes 1 10 60] [--repeat 2] [--onednn-off]

On a synthetic 3-minute stereo 44.1 kHz song (atsep.synth), each timed end to end through the same
per-track function the Beam job runs (decode -> separate -> encode wav stems -> plot -> track.json),
in this process after a warm-up:
  (a) this project's model (model/bundled, or an untrained one of configs/default-model.json: the
      weights do not change the speed);
  (b) the same pipeline with the network replaced by a fixed mask: the I/O and DSP floor;
  (c) a Spleeter-2stems-sized U-Net (two U-Nets of 12 conv layers, 1024 bins x 512 frames, STFT
      4096/1024 at 44.1 kHz, ~20 M parameters, random weights) exported and run in the same harness.
Then, each in fresh processes, side by side in the same run:
  catalogue  `atsep separate` over four such songs, less a one-second song's run (the fixed start-up):
             audio seconds per second, against (d) Spleeter 2.4.2's own code on the same song
             (bench/spleeter_peer.py in its own venv, .venv-spleeter, made here when missing);
             with --onednn-off, the catalogue again with TF_ENABLE_ONEDNN_OPTS=0 (on is the default);
  first song the first, second and third track separated after loading the model, no warm-up;
  one song   `atsep separate` of the bundled 10.9 s example, against `import tensorflow` alone (medians
             of runs taken in turns);
  memory     the peak RSS of separating 1-, 10- and 60-minute songs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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
CATALOGUE_SONGS = 4
# TensorFlow's own default (oneDNN on), as the product runs separation
ENV = {**{name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"},
       "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
SPLEETER_VENV = REPO / ".venv-spleeter"
# what pip resolves for spleeter 2.4.2 on Python 3.11, pinned so the peer stays the same
SPLEETER_PINS = ("spleeter==2.4.2", "tensorflow==2.12.1", "numpy==1.23.5", "jax==0.4.13")
EXAMPLE = REPO / "examples" / "slow_motion_dream.mp3"


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


def project_model(folder: Path) -> tuple[Path, int]:
    """(a)'s model folder and its parameter count."""
    from model.config import Config
    from model.export import export_model
    from model.unet import build_unet

    default = REPO / "model" / "bundled"
    if (default / "config.json").is_file():
        import tensorflow as tf

        variables = tf.train.list_variables(str(default / "saved_model" / "variables" / "variables"))
        return default, sum(int(np.prod(shape)) for name, shape in variables if "OBJECT_GRAPH" not in name)
    config = Config.from_json((REPO / "configs" / "default-model.json").read_text())
    model = build_unet(config)
    return export_model(model, config, folder / "project"), model.count_params()


def spleeter_sized_separator():
    """(c) and its parameter count: the Keras model behind one traced function, as an exported model's
    signature is. Not exported: Separator.load refuses graphs with ops the project's network never
    needs (model.model_dir.check_graph), and this one's dilated conv and ratio masks have some."""
    import tensorflow as tf

    from model.separator import Separator

    config = spleeter_config()
    model = spleeter_unet(config)
    serve = tf.function(model, input_signature=[
        tf.TensorSpec([None, None, config.stft.bins, config.audio.channels], tf.float32)])

    def mask_fn(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        return {head: mask.numpy() for head, mask in serve(tf.constant(magnitude)).items()}

    return Separator(config, mask_fn, "spleeter-sized"), model.count_params()


def fixed_mask_separator(model_dir: Path):
    """(b): the project's config and harness, the network replaced by constant masks."""
    from model.config import Config
    from model.separator import Separator

    config = Config.load(model_dir)
    share = 1.0 / (len(config.network.heads) + 1)

    def mask_fn(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        return {head: np.full(magnitude.shape, share, dtype=np.float32) for head in config.network.heads}

    return Separator(config, mask_fn, "fixed-mask")


def write_song(path: Path, seconds: float, synth: bool, seed: int = 0) -> None:
    """A stereo 44.1 kHz wav: atsep.synth's song, or (long songs) numpy tones and noise in blocks."""
    if synth:
        from atsep.synth import song_stems

        sf.write(path, song_stems(seed, 0, int(seconds * RATE), RATE)["mixture"], RATE, subtype="PCM_16")
        return
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16") as out:
        for start in range(0, int(seconds * RATE), RATE * 10):
            t = (start + np.arange(min(RATE * 10, int(seconds * RATE) - start))) / RATE
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
            out.write(np.stack([tone, -tone], 1) + 0.05 * rng.standard_normal((len(t), 2)))


def fft_seconds(separator, song: Path) -> float:
    """CPU seconds of the FFTs alone that separating the song takes: scipy.fft's rfft and irfft of as many
    frames as the separator transforms (every STFT frame of the song once forward per channel, once back
    per head and channel), in blocks of a patch's frames, with nothing around them."""
    import scipy.fft

    from model import dsp

    config = separator.config
    stft = config.stft.scaled(dsp.processing_factor(RATE, config.audio.sample_rate))
    frames = 1 + sf.info(str(song)).frames // stft.hop
    block = np.random.default_rng(0).standard_normal((config.network.patch_frames, stft.n_fft), np.float32)
    spec = scipy.fft.rfft(block, axis=-1)
    heads = len(config.network.heads)
    start = time.process_time()
    for _ in range(-(-frames // config.network.patch_frames) * config.audio.channels):
        scipy.fft.rfft(block, axis=-1)
        for _ in range(heads):
            scipy.fft.irfft(spec, n=stft.n_fft, axis=-1)
    return time.process_time() - start


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


def timed_run(command: list[str], env: dict | None = None) -> dict:
    """Wall and CPU seconds (user + system of the process and everything it waited for) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env or ENV, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": wall, "cpu": cpu, "stdout": done.stdout}


def atsep_separate(songs: Path, out: Path, env: dict | None = None) -> dict:
    return timed_run([sys.executable, "-m", "atsep", "separate", str(songs), "-o", str(out)], env)


def catalogue(folder: Path, onednn_off: bool) -> dict:
    """Audio seconds per second of `atsep separate` over four 3-minute songs, the fixed start-up (a run
    on one one-second song) subtracted; with `onednn_off`, also with TensorFlow's oneDNN kernels off."""
    songs, tiny = folder / "catalogue", folder / "tiny"
    songs.mkdir()
    tiny.mkdir()
    for index in range(CATALOGUE_SONGS):
        write_song(songs / f"song{index}.wav", SONG_SECONDS, synth=True, seed=index)
    write_song(tiny / "tiny.wav", 1, synth=True)
    audio = CATALOGUE_SONGS * SONG_SECONDS
    results = {}
    for name, value in [("oneDNN on", "1")] + ([("oneDNN off", "0")] if onednn_off else []):
        env = {**ENV, "TF_ENABLE_ONEDNN_OPTS": value}
        fixed = atsep_separate(tiny, folder / f"tiny-{value}", env)
        whole = atsep_separate(songs, folder / f"catalogue-{value}", env)
        results[name] = {"fixed": fixed["seconds"], "whole": whole["seconds"],
                         "realtime": audio / (whole["seconds"] - fixed["seconds"]),
                         "realtime_cpu": audio / (whole["cpu"] - fixed["cpu"])}
        print(f"  catalogue, {name}: {results[name]['realtime']:.1f}x realtime", flush=True)
    return results


def spleeter_python() -> Path:
    """Spleeter's venv (its own TensorFlow and numpy), made on first use."""
    python = SPLEETER_VENV / "bin" / "python"
    if not python.exists():
        print(f"  creating {SPLEETER_VENV} ({', '.join(SPLEETER_PINS)}): a few minutes", flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(SPLEETER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SPLEETER_PINS], check=True)
    return python


def spleeter(song: Path, repeat: int) -> dict:
    """(d): Spleeter 2.4.2's 2stems graph on the song, in memory, session reused (bench/spleeter_peer.py)."""
    run = timed_run([str(spleeter_python()), str(REPO / "bench" / "spleeter_peer.py"), str(song),
                     "--repeat", str(repeat)], {**ENV, "PYTHONPATH": ""})  # oneDNN on, as ours
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    print(f"  (d) Spleeter: {result['audio'] / result['seconds']:.1f}x realtime", flush=True)
    return result


def first_child(model_dir: str, song: str) -> None:
    """Run in a fresh process: load the model, separate the song three times, print the times as JSON."""
    from beam_jobs.outputs import OutputSettings
    from beam_jobs.separate_track import separate_track
    from model.separator import Separator

    separator = Separator.load(model_dir)
    times = []
    with tempfile.TemporaryDirectory() as out:
        for attempt in range(3):
            start, cpu = time.perf_counter(), time.process_time()
            separate_track(separator, "song", song, OutputSettings(os.path.join(out, str(attempt))))
            times.append({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu})
    print(json.dumps(times))


def first_song(model_dir: Path, song: Path) -> list[dict]:
    run = timed_run([sys.executable, __file__, "--first-child", str(model_dir), str(song)])
    times = json.loads(run["stdout"].strip().splitlines()[-1])
    print("  first song, then later ones: " + ", ".join(f"{t['seconds']:.1f} s ({t['cpu']:.1f} CPU s)"
                                                         for t in times), flush=True)
    return times


def one_song(folder: Path, repeat: int) -> dict:
    """`atsep separate` of the bundled 10.9 s example from the command line, and `import tensorflow`, taken
    in turns `repeat` times (single runs of either move by a second here); the medians."""
    commands, imports = [], []
    for attempt in range(repeat):
        commands.append(atsep_separate(EXAMPLE, folder / f"one-song-{attempt}")["seconds"])
        imports.append(timed_run([sys.executable, "-c", "import tensorflow"])["seconds"])
    command, tensorflow = float(np.median(commands)), float(np.median(imports))
    print(f"  one 10.9 s song: {', '.join(f'{t:.1f}' for t in commands)} s; "
          f"import tensorflow {', '.join(f'{t:.1f}' for t in imports)} s", flush=True)
    return {"command": command, "import": tensorflow}


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


def table(results: dict, params: dict, runs: dict, load: str) -> str:
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
    floor = results["b"]
    fft_io = floor["fft"] + floor["stages"].get("decode", 0.0) + floor["stages"].get("write", 0.0)
    lines += ["", f"(b)'s FFTs alone {floor['fft']:.2f} CPU s; (b) / (its FFTs + decode + write) = "
              f"{floor['cpu'] / fft_io:.2f} (goal <= 1.5, CPU s); of (b), the plot stage (summaries drawn, "
              f"PNG written) {floor['stages'].get('plot', 0.0):.2f} s"]
    if runs:
        peer = runs["spleeter"]["audio"] / runs["spleeter"]["seconds"]
        peer_cpu = runs["spleeter"]["audio"] / runs["spleeter"]["cpu"]
        lines += ["", "| catalogue (`atsep separate`, 4 songs, start-up subtracted) | start-up s | x realtime | "
                  "x realtime per CPU s | / Spleeter, wall (goal >= 2) | / Spleeter, CPU |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {row['fixed']:.1f} | {row['realtime']:.1f} | {row['realtime_cpu']:.1f} | "
                  f"{row['realtime'] / peer:.2f} | {row['realtime_cpu'] / peer_cpu:.2f} |"
                  for name, row in runs["catalogue"].items()]
        lines.append(f"| (d) Spleeter 2.4.2, in memory, session reused | - | {peer:.1f} | {peer_cpu:.1f} | 1 | 1 |")
        first, *later = runs["first"]
        fastest = min(later, key=lambda t: t["seconds"])
        lines += ["", f"first song after loading {first['seconds']:.1f} s ({first['cpu']:.1f} CPU s), later "
                  f"{fastest['seconds']:.1f} s ({min(t['cpu'] for t in later):.1f} CPU s): "
                  f"{first['seconds'] / fastest['seconds']:.2f} by wall time, "
                  f"{first['cpu'] / min(t['cpu'] for t in later):.2f} by CPU time (goal <= 1.2)",
                  f"one 10.9 s song from the command line {runs['one']['command']:.1f} s, import tensorflow "
                  f"{runs['one']['import']:.1f} s (medians): {runs['one']['command'] / runs['one']['import']:.2f} (goal <= 1.5)"]
    if runs.get("rss"):
        lines += ["", "| song | peak RSS (MB) | x realtime |", "|---|---|---|"]
        lines += [f"| {row['minutes']:g} min | {row['peak_rss_mb']} | {row['realtime']} |" for row in runs["rss"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 60], help="songs for peak RSS")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per model (the best is kept)")
    parser.add_argument("--onednn-off", action="store_true", help="the catalogue with oneDNN off as well")
    parser.add_argument("--in-process", action="store_true", help="only (a), (b) and (c), in this process")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--first-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(float(args.rss_child[0]), args.rss_child[1], args.rss_child[2])
        return 0
    if args.first_child:
        first_child(*args.first_child)
        return 0
    from model.separator import Separator

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp:
        folder = Path(tmp)
        song = folder / "song.wav"
        write_song(song, SONG_SECONDS, synth=True)
        project, project_params = project_model(folder)
        spleeter_sized, spleeter_params = spleeter_sized_separator()
        separators = {"a": Separator.load(project), "b": fixed_mask_separator(project), "c": spleeter_sized}
        for separator in separators.values():  # warm up: tracing, FFT plans
            separator.separate(np.zeros((RATE * 4, 2), np.float32), RATE)
        results: dict = {}
        ffts = []
        for attempt in range(args.repeat):  # interleaved, so a burst of other load hits all three alike
            for key, separator in separators.items():
                results[key] = time_track(separator, song, folder / key / str(attempt), results.get(key))
                print(f"  ({key}) {results[key]['seconds']:.1f} s", flush=True)
            ffts.append(fft_seconds(separators["b"], song))  # its baseline in the same turns, fastest kept too
        results["b"]["fft"] = min(ffts)
        runs: dict = {}
        if not args.in_process:
            runs["catalogue"] = catalogue(folder, args.onednn_off)
            runs["spleeter"] = spleeter(song, args.repeat)
            runs["first"] = first_song(project, song)
            runs["one"] = one_song(folder, max(3, args.repeat))
            runs["rss"] = measure_rss(args.minutes, project, folder)
    print(table(results, {"a": project_params, "c": spleeter_params}, runs, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
