"""Per-track steps of the preprocess job: decode, validate, resample, cut patches, encode, statistics.

Elements between the steps are `Song`s (one track's stems, [samples, channels] float32) and `Patch`es
(the same stems cut to `patch_samples`); bad tracks leave as dead letters (dicts) on the `dead` output.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
import numpy as np

from beam_jobs import storage
from audio import codec
from model import dsp
from audio.limits import Limits, check_complete
from audio.musdb import MIXTURE, MUSDB_STREAMS, Track, TrackError, find_tracks, load_track, track_key

DEAD = "dead"
NAMESPACE = "preprocess"
SILENCE_PEAK = 10 ** (-90 / 20)  # a mixture quieter than -90 dBFS everywhere carries no music


@dataclasses.dataclass
class Song:
    """A decoded track: its stems in musdb order (mixture first) at `rate`."""

    track: Track
    rate: int
    stems: dict[str, np.ndarray]
    ignored: tuple[str, ...] = ()  # stem files whose names musdb does not use
    mixture_from_stems: bool = False  # no mixture file: the mixture is the sum of the stems

    @property
    def samples(self) -> int:
        return len(self.stems[MIXTURE])


@dataclasses.dataclass
class Patch:
    track: str
    split: str
    offset: int
    rate: int
    stems: dict[str, np.ndarray]


def track_paths(track: Track) -> list[str]:
    return [track.container] if track.container else [path for _, path in track.files]


def dead_letter(track: Track, reason: str) -> dict:
    return {"track": track.name, "split": track.split, "paths": track_paths(track), "reason": reason}


class ListFiles(beam.PTransform):
    """Every file under `root`, at any depth, as a path. Object storage is matched by Beam's fileio; a local
    tree is walked with os.walk, which keeps the names Beam's local match drops because it cannot stat them
    (a symbolic link to itself, say): decoding then says why such a file fails, where no one would hear of it."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root

    def expand(self, pipeline: beam.pvalue.PBegin) -> beam.PCollection:
        if storage.is_local(self.root):
            return pipeline | "Root" >> beam.Create([self.root]) | "Walk" >> beam.FlatMap(_walk)
        return (pipeline
                | "Match" >> fileio.MatchFiles(storage.join(self.root, "**"))
                | "Paths" >> beam.Map(_path_of))


def _path_of(metadata: fileio.FileMetadata) -> str:
    return metadata.path


def _walk(root: str) -> Iterator[str]:
    for folder, _, files in os.walk(root):
        yield from (os.path.join(folder, name) for name in files)


def keyed_by_track(path: str, root: str) -> Iterator[tuple[str, str]]:
    """A matched path -> (its track's key, path); files that belong to no track are dropped."""
    key = track_key(root, path)
    if key is not None:
        yield key, path


def tracks_of_group(group: tuple[str, list[str]], root: str, validation: tuple[str, ...]) -> list[Track]:
    """The paths that share one track key -> that track (a folder's stems are grouped together)."""
    _, paths = group
    return find_tracks(root, sorted(paths), validation)


class DecodeTrack(beam.DoFn):
    """Stage a track's files locally, check them against the limits and decode their stems; bad tracks
    (undecodable, cut short, too long or wide for the limits) become dead letters."""

    def __init__(self, limits: Limits = Limits()):
        self._limits = limits

    def process(self, track: Track) -> Iterator:
        try:
            stems, rate = _load_staged(track, self._limits)
        except (TrackError, codec.DecodeError, OSError, MemoryError) as error:
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(track, f"{type(error).__name__}: {error}"))
            return
        known = [name for name in MUSDB_STREAMS if name in stems]
        ignored = tuple(sorted(set(stems) - set(known)))
        mixture_from_stems = not track.container and MIXTURE not in dict(track.files)
        yield Song(track, rate, {name: stems[name] for name in known}, ignored, mixture_from_stems)


def _load_staged(track: Track, limits: Limits) -> tuple[dict[str, np.ndarray], int]:
    paths = track_paths(track)
    with contextlib.ExitStack() as stack:
        local = [stack.enter_context(storage.staged_input(path)) for path in paths]
        # metadata first: a header that claims hours must fail here, not in a huge allocation
        declared = [limits.check_file(path) for path in local]
        # decoding stops a second past the cap: a header that understates the length costs no memory
        stems, rate = load_track(track, dict(zip(paths, local)), limits.max_seconds)
    limits.check_decoded(max(len(waveform) for waveform in stems.values()), rate)
    check_complete(min((count for count in declared if count is not None), default=None),
                   min(len(waveform) for waveform in stems.values()))
    return stems, rate


class ValidateSong(beam.DoFn):
    """Reject songs a model cannot learn from; fit the channel count to the model's."""

    def __init__(self, channels: int):
        self._channels = channels

    def process(self, song: Song) -> Iterator:
        reason = _problem(song, self._channels)
        if reason:
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(song.track, reason))
            return
        stems = {name: _fit_channels(waveform, self._channels) for name, waveform in song.stems.items()}
        yield dataclasses.replace(song, stems=stems)


def _problem(song: Song, channels: int) -> str:
    targets = [name for name in song.stems if name != MIXTURE]
    if not targets:
        found = ", ".join(song.ignored) or "none"
        return f"no stems named {', '.join(MUSDB_STREAMS[1:])} (other stem files: {found})"
    if float(np.max(np.abs(song.stems[MIXTURE]))) < SILENCE_PEAK:
        return "mixture is silent (peak below -90 dBFS)"
    have = song.stems[MIXTURE].shape[1]
    if have not in (1, channels) and channels != 1:
        return f"{have} channels, the model takes {channels} (or mono, which is duplicated)"
    return ""


def _fit_channels(waveform: np.ndarray, channels: int) -> np.ndarray:
    if waveform.shape[1] == channels:
        return waveform
    if channels == 1:
        return waveform.mean(axis=1, keepdims=True)
    return np.repeat(waveform, channels, axis=1)


def resample_song(song: Song, rate: int) -> Song:
    stems = {name: dsp.resample(waveform, song.rate, rate) for name, waveform in song.stems.items()}
    length = min(len(waveform) for waveform in stems.values())  # resamplers may round differently
    return dataclasses.replace(song, rate=rate, stems={k: v[:length] for k, v in stems.items()})


def patch_starts(samples: int, patch_samples: int) -> list[int]:
    """Back-to-back patches; the last one ends with the song (overlapping the one before), so no audio is
    lost. A song shorter than a patch is one patch at 0."""
    if samples <= patch_samples:
        return [0]
    return [*range(0, samples - patch_samples, patch_samples), samples - patch_samples]


def cut_patches(song: Song, patch_samples: int) -> Iterator[Patch]:
    for offset in patch_starts(song.samples, patch_samples):
        stems = {name: _padded(waveform[offset: offset + patch_samples], patch_samples)
                 for name, waveform in song.stems.items()}
        yield Patch(song.track.name, song.track.split, offset, song.rate, stems)


def _padded(waveform: np.ndarray, samples: int) -> np.ndarray:
    if len(waveform) >= samples:
        return waveform
    return np.pad(waveform, ((0, samples - len(waveform)), (0, 0)))


def record_key(track: str, offset: int) -> str:
    """Stable across runs, processes and machines (unlike Python's hash), so shards are reproducible."""
    return hashlib.sha256(json.dumps([track, offset]).encode()).hexdigest()


class EncodePatch(beam.DoFn):
    """Patch -> (split, key, serialised tf.train.Example)."""

    def setup(self) -> None:
        from model import records  # noqa: PLC0415 - imports TensorFlow: keep it out of `--help`

        self._records = records
        self._patches = beam.metrics.Metrics.counter(NAMESPACE, "patches")

    def process(self, patch: Patch) -> Iterator[tuple[str, str, bytes]]:
        record = self._records.encode_patch(patch.track, patch.split, patch.offset, patch.rate, patch.stems)
        self._patches.inc()
        yield patch.split, record_key(patch.track, patch.offset), record


def summarize(song: Song, patch_samples: int) -> dict:
    """The track's entry in dataset.json."""
    seconds = song.samples / song.rate
    beam.metrics.Metrics.counter(NAMESPACE, "tracks_ok").inc()
    beam.metrics.Metrics.distribution(NAMESPACE, "track_seconds").update(int(round(seconds)))
    present = list(song.stems)
    summary = {
        "name": song.track.name,
        "split": song.track.split,
        "duration_s": round(seconds, 3),
        "patches": len(patch_starts(song.samples, patch_samples)),
        "stems": present,
        "missing_stems": [name for name in MUSDB_STREAMS if name not in present],
        "source": song.track.container or posixpath.dirname(song.track.files[0][1]),
    }
    if song.mixture_from_stems:
        summary["mixture_from_stems"] = True
    if song.ignored:
        summary["ignored_stems"] = list(song.ignored)
    return summary


def count_failed(letter: dict) -> dict:
    beam.metrics.Metrics.counter(NAMESPACE, "tracks_failed").inc()
    return letter
