"""Audio codec I/O: decode any file ffmpeg reads, encode wav/flac through libsndfile, mux stems.

The one module that touches codecs; Beam jobs and tools call it with local paths (remote files are
staged by the caller). Waveforms are float32 arrays shaped [samples, channels].
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
SAMPLES_TAG = "atsep_samples"  # exact samples per stream, written by mux_stem_mp4


class DecodeError(ValueError):
    """A file that cannot be read as audio; the message says why."""


def ffmpeg_binary() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise DecodeError("ffmpeg is not installed (apt-get install ffmpeg)")
    return found


def probe(path: str | Path) -> dict:
    """ffprobe's JSON for a file: its audio `streams` and its `format` (container, tags)."""
    ffprobe = shutil.which("ffprobe")
    if not ffprobe:
        raise DecodeError("ffprobe is not installed (apt-get install ffmpeg)")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DecodeError(f"not a readable media file: {last_line(result.stderr)}")
    return json.loads(result.stdout or "{}")


def decode(path: str | Path, stream: int = 0, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode one audio stream of a file to float32 [samples, channels] and its sample rate.

    With `max_seconds`, decoding stops a second past it, whatever the header declares: the caller sees a
    longer result (and refuses it) without ever holding more."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    if stream == 0 and path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            with sf.SoundFile(str(path)) as source:
                most = -1 if max_seconds is None else int((max_seconds + 1) * source.samplerate)
                waveform = source.read(frames=most, dtype="float32", always_2d=True)
                return _checked(waveform), int(source.samplerate)
        except (sf.LibsndfileError, RuntimeError):
            pass  # some codecs libsndfile does not handle: let ffmpeg try
    return _decode_with_ffmpeg(path, stream, max_seconds=max_seconds)


def _duration_cap(max_seconds: float | None) -> list[str]:
    """ffmpeg's output option that stops decoding a second past `max_seconds` (none without a cap)."""
    return [] if max_seconds is None else ["-t", f"{max_seconds + 1:.3f}"]


def decode_streams(path: str | Path, max_seconds: float | None = None) -> tuple[list[np.ndarray], int]:
    """Decode every audio stream of a multi-stream file (a `.stem.mp4`), trimmed to equal length
    (`max_seconds` as for `decode`).

    One ffmpeg run demuxes the file once and writes each stream to its own raw file, which costs
    about a third of decoding the streams one by one."""
    info = probe(path)
    streams = info.get("streams", [])
    if not streams:
        raise DecodeError("no audio stream in file")
    rates = {int(s["sample_rate"]) for s in streams}
    if len(rates) != 1:
        raise DecodeError(f"streams have different sample rates: {sorted(rates)}")
    rate = rates.pop()
    with tempfile.TemporaryDirectory(prefix="atsep-decode-") as tmp:
        outputs = [arg for index in range(len(streams))
                   for arg in ("-map", f"0:a:{index}", *_duration_cap(max_seconds), "-f", "f32le", "-acodec",
                               "pcm_f32le", f"{tmp}/{index}.raw")]
        result = subprocess.run([ffmpeg_binary(), "-v", "error", "-nostdin", "-i", str(path), *outputs],
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise DecodeError(f"ffmpeg could not decode: {last_line(result.stderr.decode(errors='replace'))}")
        decoded = [_raw_waveform(np.fromfile(f"{tmp}/{index}.raw", dtype="<f4"), info, index, rate)
                   for index in range(len(streams))]
    length = min(len(waveform) for waveform in decoded)
    return [waveform[:length] for waveform in decoded], rate


def _decode_with_ffmpeg(path: Path, stream: int, info: dict | None = None,
                        max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    info = info or probe(path)
    streams = info.get("streams", [])
    if stream >= len(streams):
        raise DecodeError(f"file has {len(streams)} audio stream(s), stream {stream} asked for")
    rate = int(streams[stream]["sample_rate"])
    result = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:a:{stream}",
         *_duration_cap(max_seconds), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=False)
    if result.returncode != 0:
        raise DecodeError(f"ffmpeg could not decode: {last_line(result.stderr.decode(errors='replace'))}")
    return _raw_waveform(np.frombuffer(result.stdout, dtype="<f4"), info, stream, rate), rate


def _raw_waveform(samples: np.ndarray, info: dict, stream: int, rate: int) -> np.ndarray:
    """Interleaved float32 samples of one stream -> [samples, channels], cut to the stream's true length."""
    channels = int(info["streams"][stream]["channels"])
    waveform = samples[: len(samples) // channels * channels].reshape(-1, channels)
    return _checked(waveform[: mp4_length(info, stream, rate)].copy())


def mp4_length(info: dict, stream: int, rate: int) -> int | None:
    """The true sample count of an MP4 audio stream, or None where the container does not say.

    ffmpeg drops the AAC priming samples at the start (the edit list's media time) but keeps the
    encoder's padding of the last frame, so decoded streams run up to a frame or two long. The edit
    list's duration says where the audio ends (exact in MUSDB18's files); files written by
    `mux_stem_mp4` also carry the exact count in a tag, because ffmpeg 5's AAC encoder states the last
    frame's duration a few samples short.
    """
    container = info.get("format", {})
    if not {"mp4", "mov"} & set(container.get("format_name", "").split(",")):
        return None
    tagged = container.get("tags", {}).get(SAMPLES_TAG)
    if tagged is not None and str(tagged).isdigit():
        return int(tagged)
    described = info["streams"][stream]
    if "duration_ts" not in described or "time_base" not in described:
        return None
    return round(int(described["duration_ts"]) * Fraction(described["time_base"]) * rate)


def _checked(waveform: np.ndarray) -> np.ndarray:
    if waveform.shape[0] == 0:
        raise DecodeError("no audio samples decoded")
    if not np.all(np.isfinite(waveform)):
        raise DecodeError("audio contains NaN or Inf samples")
    return waveform.astype(np.float32, copy=False)


def encode(path: str | Path, waveform: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write a waveform [samples, channels] as wav or flac (by suffix) through libsndfile."""
    sf.write(str(path), waveform, sample_rate, subtype=subtype)


def mux_stem_mp4(path: str | Path, waveforms: list[np.ndarray], sample_rate: int,
                 bitrate: str = "256k") -> None:
    """Write waveforms as one AAC stream each in an MP4 (the MUSDB18 `.stem.mp4` layout).

    The streams should be of equal length; the shortest length is recorded so that `decode_streams`
    gives back exactly that many samples."""
    length = min(len(waveform) for waveform in waveforms)
    with tempfile.TemporaryDirectory() as tmp:
        inputs: list[str] = []
        for index, waveform in enumerate(waveforms):
            wav = Path(tmp) / f"{index}.wav"
            encode(wav, waveform, sample_rate, subtype="FLOAT")
            inputs += ["-i", str(wav)]
        maps = [arg for index in range(len(waveforms)) for arg in ("-map", str(index))]
        result = subprocess.run(
            [ffmpeg_binary(), "-v", "error", "-nostdin", "-y", *inputs, *maps,
             "-c:a", "aac", "-b:a", bitrate, "-movflags", "+use_metadata_tags",
             "-metadata", f"{SAMPLES_TAG}={length}", "-f", "mp4", str(path)],
            capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg could not write {path}: {result.stderr.decode(errors='replace')}")


def last_line(text: str) -> str:
    """The last non-empty line of a tool's error output: ffmpeg and ffprobe put the reason there."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
