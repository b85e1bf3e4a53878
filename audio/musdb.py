"""Multitrack song layouts: MUSDB18 `.stem.mp4`, MUSDB18-HQ wav folders and plain stem folders.

`find_tracks` turns a flat list of file paths under a root into tracks with their split;
`load_track` decodes one track's stems (local paths) and checks they fit together.
"""
from __future__ import annotations

import dataclasses
import posixpath

import numpy as np

from audio import codec
from model.config import MIXTURE, STEM_NAMES

MUSDB_STREAMS = (MIXTURE, *STEM_NAMES)  # stream order in a .stem.mp4
STEM_MP4_SUFFIX = ".stem.mp4"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff")
SPLITS = ("train", "test")

# musdb's official validation tracks, taken out of train (sigsep/musdb `validation_tracks`).
MUSDB_VALIDATION_TRACKS = (
    "Actions - One Minute Smile", "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies", "Patrick Talbot - A Reason To Leave", "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero", "Fergessen - Nos Palpitants", "Leaf - Summerghost",
    "Skelpolu - Human Mistakes", "Young Griffo - Pennies", "ANiMAL - Rockshow",
    "James May - On The Line", "Meaxic - Take A Step", "Traffic Experiment - Sirens",
)


class TrackError(ValueError):
    """A track whose stems cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class Track:
    """One song: either a `.stem.mp4` (`container`) or a folder of stem files (`files`)."""

    name: str
    split: str
    container: str = ""
    files: tuple[tuple[str, str], ...] = ()  # (stem, path) pairs, sorted by stem

    @property
    def stems(self) -> tuple[str, ...]:
        return MUSDB_STREAMS if self.container else tuple(stem for stem, _ in self.files)


def track_key(root: str, path: str) -> str | None:
    """Which track a file belongs to, as a path relative to `root`: a `.stem.mp4` is a track of its own,
    an audio file in a folder is a stem of the folder's track; None for any other file. Files with one key
    make one track, so a catalogue can be grouped by key without ever listing it in one place."""
    root = root.rstrip("/")
    relative = path[len(root):].lstrip("/") if path.startswith(root) else posixpath.basename(path)
    base = posixpath.basename(relative)
    if base.endswith(STEM_MP4_SUFFIX):
        return relative
    if posixpath.splitext(base)[1].lower() in AUDIO_SUFFIXES and posixpath.dirname(relative):
        return posixpath.dirname(relative)
    return None


def find_tracks(root: str, paths: list[str], validation: tuple[str, ...] = MUSDB_VALIDATION_TRACKS) -> list[Track]:
    """Group file paths under `root` into tracks (by `track_key`), sorted by split then name.

    The split is the first folder below the root when it is `train` or `test` (else `train`);
    training songs named in `validation` go to `valid`.
    """
    containers: dict[str, str] = {}
    folders: dict[str, dict[str, str]] = {}
    for path in paths:
        key = track_key(root, path)
        if key is None:
            continue
        if posixpath.basename(key).endswith(STEM_MP4_SUFFIX) and path.endswith(key):
            containers[path] = key
        else:
            folders.setdefault(key, {})[posixpath.splitext(posixpath.basename(path))[0]] = path
    tracks = []
    for path, relative in containers.items():
        name = posixpath.basename(relative)[: -len(STEM_MP4_SUFFIX)]
        tracks.append(Track(name, _split(relative, name, validation), container=path))
    for folder, files in folders.items():
        name = posixpath.basename(folder)
        tracks.append(Track(name, _split(folder, name, validation), files=tuple(sorted(files.items()))))
    return sorted(tracks, key=lambda track: (track.split, track.name))


def _split(relative: str, name: str, validation: tuple[str, ...]) -> str:
    first = relative.split("/", 1)[0]
    split = first if first in SPLITS and "/" in relative else "train"
    return "valid" if split == "train" and name in validation else split


def load_track(track: Track, local_paths: dict[str, str] | None = None,
               max_seconds: float | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Decode a track's stems to {stem: float32 [samples, channels]} and their common rate.

    `local_paths` maps the track's remote paths to staged local copies, where they differ; with
    `max_seconds` no stem is decoded much past it (see codec.decode), whatever its header declares.
    Raises TrackError for a missing mixture, a wrong stream count, or stems that do not fit together.
    """
    local = local_paths or {}
    if track.container:
        streams, rate = codec.decode_streams(local.get(track.container, track.container), max_seconds)
        if len(streams) != len(MUSDB_STREAMS):
            raise TrackError(f"expected {len(MUSDB_STREAMS)} audio streams "
                             f"({', '.join(MUSDB_STREAMS)}), found {len(streams)}")
        stems = dict(zip(MUSDB_STREAMS, streams))
        return _trim_to_shortest(stems, tolerance=4096), rate
    decoded = {stem: codec.decode(local.get(path, path), max_seconds=max_seconds) for stem, path in track.files}
    rates = {rate for _, rate in decoded.values()}
    if len(rates) != 1:
        raise TrackError(f"stems have different sample rates: {sorted(rates)}")
    stems = {stem: waveform for stem, (waveform, _) in decoded.items()}
    if MIXTURE not in stems:
        stems = {MIXTURE: _sum_of(stems), **stems}
    return _trim_to_shortest(stems, tolerance=0), rates.pop()


def _sum_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    _check_shapes(stems, tolerance=0)
    return np.sum(list(stems.values()), axis=0)


def _trim_to_shortest(stems: dict[str, np.ndarray], tolerance: int) -> dict[str, np.ndarray]:
    """Stems must agree in channels, and in length to within `tolerance` samples (codec padding)."""
    shortest = _check_shapes(stems, tolerance)
    return {stem: waveform[:shortest] for stem, waveform in stems.items()}


def _check_shapes(stems: dict[str, np.ndarray], tolerance: int) -> int:
    channels = {waveform.shape[1] for waveform in stems.values()}
    if len(channels) != 1:
        raise TrackError(f"stems have different channel counts: {sorted(channels)}")
    lengths = {stem: waveform.shape[0] for stem, waveform in stems.items()}
    if max(lengths.values()) - min(lengths.values()) > tolerance:
        raise TrackError(f"stems have unequal lengths (samples): {lengths}")
    return min(lengths.values())
