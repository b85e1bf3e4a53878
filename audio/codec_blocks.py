"""Block-wise audio I/O, so a song of any length passes through bounded memory.

`AudioReader` decodes one stream of a file in blocks of float32 [samples, channels]: libsndfile for the
formats it reads, otherwise an ffmpeg pipe (m4a/aac, the mixture stream of a `.stem.mp4`, ...).
`AudioWriter` encodes blocks as they come: wav/flac through libsndfile, mp3/ogg at a chosen bitrate
through an ffmpeg encoder pipe. Errors are `codec.DecodeError` (reading) or `EncodeError` (writing).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from audio.codec import SOUNDFILE_SUFFIXES, DecodeError, last_line, mp4_length, probe, ffmpeg_binary

BLOCK = 1 << 16  # samples per block: ~1.5 s at 44.1 kHz, a few hundred KB
# libsndfile 1.2's mp3 reader returns wrong samples after the first few reads in blocks: ffmpeg reads mp3
BLOCKWISE_SOUNDFILE_SUFFIXES = SOUNDFILE_SUFFIXES - {".mp3"}
LIBSNDFILE_FORMATS = {"wav": "WAV", "flac": "FLAC"}
FFMPEG_ENCODERS = {"mp3": ("libmp3lame", "mp3"), "ogg": ("libvorbis", "ogg")}
FORMATS = (*LIBSNDFILE_FORMATS, *FFMPEG_ENCODERS)


class EncodeError(RuntimeError):
    """An encoder refused the audio or failed while writing; the message says why."""


class AudioReader:
    """One audio stream of a file, read block by block: `rate`, `channels`, then iterate the blocks."""

    def __init__(self, path: str | Path, stream: int = 0, block: int = BLOCK):
        self.path, self.stream, self.block = Path(path), stream, block
        if not self.path.is_file():
            raise DecodeError(f"no such file: {self.path}")
        if self.path.stat().st_size == 0:
            raise DecodeError("empty file (0 bytes)")
        self._soundfile = self._open_soundfile()
        if self._soundfile is not None:
            self.rate, self.channels, self._length = self._soundfile.samplerate, self._soundfile.channels, None
        else:
            info = probe(self.path)
            streams = info.get("streams", [])
            if stream >= len(streams):
                raise DecodeError(f"file has {len(streams)} audio stream(s), stream {stream} asked for")
            self.rate, self.channels = int(streams[stream]["sample_rate"]), int(streams[stream]["channels"])
            self._length = mp4_length(info, stream, self.rate)
        self.samples = 0  # samples read so far

    def _open_soundfile(self) -> sf.SoundFile | None:
        if self.stream != 0 or self.path.suffix.lower() not in BLOCKWISE_SOUNDFILE_SUFFIXES:
            return None
        try:
            return sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError):
            return None  # some codecs libsndfile does not handle: let ffmpeg try

    def __iter__(self) -> Iterator[np.ndarray]:
        blocks = self._soundfile_blocks() if self._soundfile is not None else self._ffmpeg_blocks()
        for block in blocks:
            if not np.all(np.isfinite(block)):
                raise DecodeError("audio contains NaN or Inf samples")
            self.samples += block.shape[0]
            yield block
        if self.samples == 0:
            raise DecodeError("no audio samples decoded")

    def _soundfile_blocks(self) -> Iterator[np.ndarray]:
        with self._soundfile as source:
            try:
                yield from source.blocks(self.block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as error:  # e.g. a flac cut short: "lost sync"
                raise DecodeError(f"corrupt or truncated audio after {self.samples} samples: {error}") from None

    def _ffmpeg_blocks(self) -> Iterator[np.ndarray]:
        command = [ffmpeg_binary(), "-v", "error", "-nostdin", "-i", str(self.path),
                   "-map", f"0:a:{self.stream}", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
        frame_bytes = 4 * self.channels
        left = self._length if self._length is not None else -1  # the container's true length, if known
        with tempfile.TemporaryFile() as errors, subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL) as process:
            ended = False  # ffmpeg's output ran out on its own (rather than: enough samples, or we gave up)
            try:
                while left != 0:
                    data = process.stdout.read(self.block * frame_bytes)
                    if not data:
                        ended = True
                        break
                    block = np.frombuffer(data[: len(data) // frame_bytes * frame_bytes], dtype="<f4")
                    block = block.reshape(-1, self.channels)
                    if left > 0:
                        block, left = block[:left], max(0, left - block.shape[0])
                    yield block
            finally:
                if not ended:
                    process.kill()
                code = process.wait()
            if ended and code != 0:
                errors.seek(0)
                raise DecodeError(f"ffmpeg could not decode: {last_line(errors.read().decode(errors='replace'))}")


class AudioWriter:
    """Encode [samples, channels] blocks to `path` as they come; `close()` finishes the file."""

    def __init__(self, path: str | Path, rate: int, channels: int, fmt: str = "wav",
                 subtype: str = "PCM_16", bitrate: str = "192k"):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
        self.path, self.channels = str(path), channels
        self._file = self._process = None
        self._to_int16 = fmt == "wav" and subtype == "PCM_16"  # libsndfile's flac encoder rounds otherwise
        if fmt in LIBSNDFILE_FORMATS:
            self._file = sf.SoundFile(self.path, "w", rate, channels, subtype, format=LIBSNDFILE_FORMATS[fmt])
            return
        if fmt == "mp3" and channels > 2:
            raise EncodeError(f"mp3 holds at most 2 channels, this audio has {channels}")
        codec, container = FFMPEG_ENCODERS[fmt]
        self._errors = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [ffmpeg_binary(), "-v", "error", "-nostdin", "-y", "-f", "f32le", "-ar", str(rate),
             "-ac", str(channels), "-i", "pipe:0", "-c:a", codec, "-b:a", bitrate, "-f", container, self.path],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errors)

    def write(self, block: np.ndarray) -> None:
        if self._file is not None:
            self._file.write(pcm16(block) if self._to_int16 else block)
            return
        try:
            self._process.stdin.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        except BrokenPipeError:
            self._finish_process()  # ffmpeg died: raise with its own message

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self._process is not None:
            self._finish_process()

    def _finish_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
        self._errors.seek(0)
        message = last_line(self._errors.read().decode(errors="replace"))
        self._errors.close()
        if code != 0:
            raise EncodeError(f"ffmpeg could not encode {Path(self.path).name}: {message}")

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pcm16(block: np.ndarray) -> np.ndarray:
    """Float samples [-1, 1) as 16-bit integers, the way libsndfile converts them for a wav (floor(x * 32768),
    clipped to full scale: the same bits, tests/audio/test_codec_blocks.py), in a third of its time:
    libsndfile's conversion of float blocks took about 0.1 CPU s per 3-minute stereo stem."""
    scaled = np.multiply(block, np.float32(32768), dtype=np.float32)
    np.floor(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)
