"""A corpus of hostile inputs, generated at test time (nothing binary is committed).

Each `Case` writes one file into a folder and says what each pipeline should make of it:
`ok` (the track completes) or `dead` (it lands in the dead-letter output with a reason that
contains `reason`). The same corpus goes through `separate`, `preprocess` and the CLI.
"""
from __future__ import annotations

import dataclasses
import struct
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from audio.codec import ffmpeg_binary, mux_stem_mp4
from audio.musdb import AUDIO_SUFFIXES

RATE = 22050
OK, DEAD = "ok", "dead"


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile (or merely unusual) input file and the outcome each pipeline should reach."""

    name: str  # short label for the table
    file: str  # file name inside the corpus folder
    what: str  # what the file is, in words
    write: Callable[[Path], None]
    separate: str = OK  # expected outcome of `atsep separate`
    preprocess: str = OK  # expected outcome of `atsep preprocess` (the file as a track's stems)
    reason: str = ""  # a fragment the dead-letter reason must contain (both pipelines)

    @property
    def track(self) -> str:
        name = self.file[: -len(".stem.mp4")] if self.file.endswith(".stem.mp4") else self.file.rsplit(".", 1)[0]
        return name


def tone(seconds: float, rate: int = RATE, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A quiet sine with a little noise: real enough for every decoder, tiny on disk."""
    rng = np.random.default_rng(seed)
    t = np.arange(max(1, int(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.02 * rng.standard_normal((len(t), channels))
    return wave.astype(np.float32)


def _sound(fmt: str, seconds: float = 1.0, **kwargs) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        sf.write(path, tone(seconds), RATE, format=fmt, **kwargs)
    return write


def _truncated(fmt: str, keep: float, **kwargs) -> Callable[[Path], None]:
    """A valid file cut short: only the first `keep` share of its bytes."""
    def write(path: Path) -> None:
        sf.write(path, tone(2.0), RATE, format=fmt, **kwargs)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _float_wav(bad: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        wave = tone(0.5)
        wave[len(wave) // 2, 0] = bad
        sf.write(path, wave, RATE, subtype="FLOAT")
    return write


def _stem_mp4(streams: int) -> Callable[[Path], None]:
    return lambda path: mux_stem_mp4(path, [tone(1.0, 44100, seed=i) for i in range(streams)], 44100)


def _video(with_audio: bool) -> Callable[[Path], None]:
    """One second of an MPEG-4 test card, with an AAC soundtrack or without one (ffmpeg's own sources)."""
    def write(path: Path) -> None:
        sources = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5"]
        if with_audio:
            sources += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={RATE}"]
        subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", *sources, "-t", "1", "-c:v", "mpeg4",
                        *(["-c:a", "aac"] if with_audio else []), "-y", str(path)], check=True)
    return write


def _loud(path: Path) -> None:
    """A float wav peaking at +12 dBFS (four times full scale), as a master bounced without a limiter."""
    wave = tone(1.0)
    sf.write(path, wave * (4.0 / np.abs(wave).max()), RATE, subtype="FLOAT")


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)  # a link to itself: opening it fails with "Too many levels of symbolic links"


def _hour_of_silence(path: Path) -> None:
    """An hour of 8 kHz mono digital silence as FLAC, written in blocks: a few hundred KB on disk."""
    block = np.zeros((8000 * 60, 1), dtype=np.int16)
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16", format="FLAC") as out:
        for _ in range(60):
            out.write(block)


def _huge_header(path: Path) -> None:
    """A wav whose RIFF and data chunk sizes claim ~4 GiB (74 h at 8 kHz mono) over 0.25 s of audio."""
    audio = (tone(0.25, 8000, 1) * 32767).astype("<i2").tobytes()
    claimed = 0xFFFFFFF0
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", claimed) + b"WAVE" + fmt
                     + b"data" + struct.pack("<I", claimed - 36) + audio)


def _flac_claiming_forever(path: Path) -> None:
    """A flac whose STREAMINFO declares 2**36 - 1 samples (865 h at 22.05 kHz) over 1 s of audio."""
    sf.write(path, tone(1.0), RATE, format="FLAC")
    data = bytearray(path.read_bytes())
    packed = int.from_bytes(data[18:26], "big")  # rate:20 channels:3 bits:5 total_samples:36
    data[18:26] = ((packed >> 36 << 36) | (1 << 36) - 1).to_bytes(8, "big")
    path.write_bytes(bytes(data))


def _png(path: Path) -> None:
    """A real (tiny) PNG image wearing a .wav extension: ffmpeg opens it, but finds no audio."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure = plt.figure(figsize=(0.5, 0.5))
    figure.savefig(path, format="png")
    plt.close(figure)


CASES: tuple[Case, ...] = (
    Case("zero bytes", "empty.wav", "a 0-byte .wav", _bytes(b""), DEAD, DEAD, "empty file"),
    Case("truncated mp3", "cut-mp3.mp3", "first half of an mp3",
         _truncated("MP3", 0.5), OK, OK),
    Case("truncated flac", "cut-flac.flac", "first 40% of a flac", _truncated("FLAC", 0.4), DEAD, DEAD),
    Case("truncated ogg", "cut-ogg.ogg", "first 40% of an ogg vorbis", _truncated("OGG", 0.4), DEAD, DEAD),
    Case("header only", "stub.flac", "first 60 bytes of a flac: a header, no audio",
         _truncated("FLAC", 0.004), DEAD, DEAD, ""),
    Case("text as mp3", "notes.mp3", "a text file named .mp3", _bytes(b"this is not audio\n" * 50),
         DEAD, DEAD, ""),
    Case("image as wav", "picture.wav", "a PNG image named .wav", _png, DEAD, DEAD, ""),
    Case("random bytes", "noise.flac", "4 KB of random bytes named .flac",
         _bytes(np.random.default_rng(3).bytes(4096)), DEAD, DEAD, ""),
    Case("stem.mp4, 4 of 5 streams", "short.stem.mp4", "a .stem.mp4 with one stream missing",
         _stem_mp4(4), OK, DEAD, "expected 5 audio streams"),
    Case("float wav NaN", "nan.wav", "32-bit float wav with one NaN sample", _float_wav(float("nan")),
         DEAD, DEAD, "NaN or Inf"),
    Case("float wav Inf", "inf.wav", "32-bit float wav with one +Inf sample", _float_wav(float("inf")),
         DEAD, DEAD, "NaN or Inf"),
    Case("8 kHz mono", "phone.wav", "8 kHz, 1 channel",
         lambda path: sf.write(path, tone(1.0, 8000, 1), 8000), OK, OK),
    Case("96 kHz 6 channels", "surround.flac", "96 kHz, 6 channels (5.1)",
         lambda path: sf.write(path, tone(0.5, 96000, 6), 96000), OK, DEAD, "6 channels"),
    Case("above 0 dBFS", "loud.wav", "float wav peaking at +12 dBFS", _loud, OK, OK),
    Case("video with sound", "clip.mp4", "an MPEG-4 video with an AAC soundtrack", _video(True), OK, OK),
    Case("video, no sound", "film.mp4", "an MPEG-4 video with no audio stream", _video(False), DEAD, DEAD,
         "0 audio stream"),
    Case("symlink loop", "loop.wav", "a symbolic link to itself", _symlink_loop, DEAD, DEAD,
         "Too many levels of symbolic links"),
    Case("one sample", "blip.wav", "a wav one sample long",
         lambda path: sf.write(path, np.full((1, 2), 0.5, np.float32), RATE), OK, OK),
    Case("an hour of silence", "silence.flac", "60 min of 8 kHz mono digital silence (FLAC)",
         _hour_of_silence, OK, DEAD, "longer than"),
    Case("huge declared length (flac)", "forever.flac", "flac header declaring 865 h over 1 s of audio",
         _flac_claiming_forever, DEAD, DEAD, "longer than"),
    Case("huge declared length (wav)", "liar.wav", "wav RIFF/data sizes claiming ~4 GiB over 0.25 s",
         _huge_header, OK, OK),
    Case("unicode, spaces, quotes", "Café \"Live\" 'Mix' ü 雨.wav", "unicode, spaces and both quotes in the name",
         _sound("WAV"), OK, OK),
    Case("dots name", "...wav", "a name of dots (track `...wav`: a folder name, not `..`)", _sound("WAV"), OK, OK),
    Case("leading dash", "-rf.wav", "a name that looks like an option", _sound("WAV"), OK, OK),
    Case("backslash dot-dot", "..\\..\\escape.wav", "`..\\..\\escape.wav`: `..` and separators (on Windows)",
         _sound("WAV"), OK, OK),
    Case("control characters", "new\nline\ttab.wav", "a newline and a tab in the name", _sound("WAV"), OK, OK),
)


def write_corpus(folder: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Case]:
    """Write every case's file into `folder`; returns {file name: case}."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case.write(folder / case.file)
    return {case.file: case for case in cases}


def write_track_folders(root: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Case]:
    """The corpus as preprocess input: each case is a track folder `train/<track>/` whose vocals and
    drums stems are both the hostile file (a `.stem.mp4` case stays a container, a video is named `.m4a`);
    returns {track: case}."""
    tracks = {}
    for case in cases:
        (root / "train").mkdir(parents=True, exist_ok=True)
        if case.file.endswith(".stem.mp4"):
            case.write(root / "train" / case.file)
            tracks[case.track] = case
            continue
        folder = root / "train" / _folder_name(case)
        folder.mkdir()
        suffix = Path(case.file).suffix
        if suffix not in AUDIO_SUFFIXES:  # a video: the layout names stems by audio suffixes only
            suffix = ".m4a"
        for stem in ("vocals", "drums"):
            case.write(folder / f"{stem}{suffix}")
        tracks[_folder_name(case)] = case
    return tracks


def _folder_name(case: Case) -> str:
    return case.track if case.track not in ("", ".", "..") else f"dots{case.track}"
