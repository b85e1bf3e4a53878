"""Resource limits on input audio, checked from the container's metadata before anything is decoded.

A song longer, wider or faster than the limits is refused with a clear reason instead of filling
memory: the duration, channel count and sample rate come from ffprobe (so a header that claims hours
fails in milliseconds), and `bounded` stops a decoder whose stream runs past the declared length.
The defaults are generous for real music; jobs expose them as options.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from audio.codec import DecodeError, probe


EXACT_LENGTH_FORMATS = {"wav", "flac", "aiff"}  # containers whose headers state the exact sample count


class LimitError(DecodeError):
    """Audio outside the configured limits; the message names the limit and the value found."""


@dataclasses.dataclass(frozen=True)
class Limits:
    max_seconds: float = 3 * 3600.0
    max_channels: int = 16
    max_sample_rate: int = 384_000
    min_samples: int = 1

    def check(self, rate: int, channels: int, seconds: float | None = None) -> None:
        """Raise LimitError if a stream's rate, channels or (declared) duration is out of bounds."""
        if not 0 < rate <= self.max_sample_rate:
            raise LimitError(f"sample rate {rate} Hz is outside 1..{self.max_sample_rate} Hz (the limit)")
        if not 0 < channels <= self.max_channels:
            raise LimitError(f"{channels} channels is outside 1..{self.max_channels} (the limit)")
        if seconds is not None and seconds > self.max_seconds:
            raise LimitError(f"declared duration {_hms(seconds)} is longer than the {_hms(self.max_seconds)} limit")
        if seconds is not None and round(seconds * rate) < self.min_samples:
            raise LimitError(f"{round(seconds * rate)} samples, fewer than the {self.min_samples} limit")

    def check_file(self, path: str | Path, stream: int = 0) -> int | None:
        """Check one audio stream of a local file from its metadata (ffprobe), without decoding it.

        Returns the exact sample count the header declares where the format states one (wav, flac,
        aiff), for `check_complete` after decoding; None otherwise."""
        if Path(path).stat().st_size == 0:
            raise DecodeError("empty file (0 bytes)")
        info = probe(path)
        streams = info.get("streams", [])
        if stream >= len(streams):
            raise DecodeError(f"file has {len(streams)} audio stream(s), stream {stream} asked for")
        described = streams[stream]
        rate, channels = int(described.get("sample_rate") or 0), int(described.get("channels") or 0)
        if not rate or not channels:
            raise DecodeError(f"no decodable audio: ffprobe finds a {described.get('codec_name', 'unknown')} "
                              "stream without a sample rate or channel count")
        seconds = _declared_seconds(described)
        self.check(rate, channels, seconds)
        exact = set(info.get("format", {}).get("format_name", "").split(",")) & EXACT_LENGTH_FORMATS
        return round(seconds * rate) if exact and seconds is not None else None

    def check_decoded(self, samples: int, rate: int) -> None:
        """Raise LimitError when decoded audio runs past max_seconds (its header claimed less)."""
        if samples > int(self.max_seconds * rate):
            raise LimitError(f"audio runs past the {_hms(self.max_seconds)} limit (the header declared less)")

    def bounded(self, blocks: Iterable[np.ndarray], rate: int) -> Iterator[np.ndarray]:
        """Pass blocks through, raising LimitError once more than max_seconds of audio has come."""
        most, seen = int(self.max_seconds * rate), 0
        for block in blocks:
            seen += block.shape[0]
            if seen > most:
                raise LimitError(f"audio runs past the {_hms(self.max_seconds)} limit")
            yield block
        if 0 < seen < self.min_samples:
            raise LimitError(f"{seen} samples, fewer than the {self.min_samples} limit")


def check_complete(declared: int | None, decoded: int) -> None:
    """Raise DecodeError when fewer samples decoded than the header declared: the file was cut short."""
    if declared is not None and decoded < declared:
        raise DecodeError(f"truncated: the header declares {declared} samples, only {decoded} decode")


def _declared_seconds(described: dict) -> float | None:
    """The stream's duration as its container declares it; None where it declares none."""
    try:
        return float(described["duration"])
    except (KeyError, TypeError, ValueError):
        return None


def _hms(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
