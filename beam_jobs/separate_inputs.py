"""What a separate run reads: input paths, folders and globs (local or gs://) expanded to files, each
named by its track; the names two inputs would share refused; the exported model checked.

Plain functions over storage paths, called by the pipeline's steps (beam_jobs/separate.py).
"""
from __future__ import annotations

import os
from typing import Any, Iterator

from apache_beam.io.filesystems import FileSystems

from beam_jobs import outputs, storage
from beam_jobs.options import ConfigurationError
from beam_jobs.outputs import OutputSettings
from model.config import CONFIG_FILE, RESIDUAL, Config
from model.model_dir import ModelDirError, check_model_dir


def track_name(path: str) -> str:
    """File name without its extension, and without `.stem` for MUSDB-style `.stem.mp4` files, made safe
    to use as a folder name (outputs.safe_name: unicode, spaces and quotes stay)."""
    name = os.path.splitext(storage.basename(path))[0]
    return outputs.safe_name(name[: -len(".stem")] if name.endswith(".stem") else name)


def input_patterns(inputs: list[str], input_list: str | None) -> list[str]:
    """The command line's paths and globs, then those of `input_list` (one per line, `#` comments)."""
    patterns = list(inputs)
    if input_list:
        lines = storage.read_text(input_list).splitlines()
        patterns += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [storage.absolute(pattern) for pattern in patterns]


def matching_files(pattern: str) -> list[str]:
    """Files a path, folder or glob names (a folder: the files directly in it)."""
    if storage.is_local(pattern) and os.path.isdir(pattern):
        # listed directly: Beam's `*` skips names holding a backslash, and no file may go unnoticed
        return sorted(entry.path for entry in os.scandir(pattern) if entry.is_file())
    matched = FileSystems.match([pattern])[0].metadata_list
    return [m.path for m in matched if not (storage.is_local(m.path) and os.path.isdir(m.path))]


def expand(pattern: str) -> tuple[list[str], str | None]:
    """The files a pattern names, or none and the reason it names nothing usable."""
    try:
        files = matching_files(pattern)
    except Exception as error:  # noqa: BLE001 - a bad pattern must not stop the others
        return [], f"cannot list: {error}"
    return files, None if files else "no file matches this path or pattern"


def count_files(patterns: list[str]) -> int:
    """How many files the patterns name (bad patterns count none: the pipeline reports them)."""
    return sum(len(expand(pattern)[0]) for pattern in patterns)


def pick_one(track: str, paths: list[str], stems: tuple[str, ...],
             settings: OutputSettings) -> tuple[str, dict[str, str] | None, list[tuple[str, str]]]:
    """Of several files with one track name keep the first path: (path, its output files or None when the
    name would leave the output prefix, [(path, reason)] for every file refused)."""
    first, *others = sorted(set(paths))
    refused = [(path, f"track name {track!r} is already taken by {first}") for path in others]
    try:
        return first, outputs.track_files(track, stems, settings), refused
    except outputs.UnsafePath as error:
        return first, None, [*refused, (first, str(error))]


def losers(element: tuple[str, Any]) -> Iterator[tuple[str, str]]:
    """(output name, claimants) -> (track, reason) for every claimant but the first (sorted by track)."""
    name, claimants = element
    (winner, _), *others = sorted(set(claimants))
    for track, _ in others:
        yield track, f"output {name!r} (names compared ignoring case) is already taken by track {winner!r}"


def check_model(model_dir: str) -> None:
    """Refuse a folder that holds no exported model, or (when local) one whose graph fails the checks."""
    config = storage.join(model_dir, CONFIG_FILE)
    if not storage.exists(config):
        raise ConfigurationError(f"no exported model at {model_dir} (missing {config})")
    if storage.is_local(model_dir):  # a remote one is checked where it is staged, on the workers
        try:
            check_model_dir(model_dir)
        except ModelDirError as error:
            raise ConfigurationError(str(error)) from None


def stem_names(model_dir: str) -> tuple[str, ...]:
    """The stems an exported model writes, from its config.json (no TensorFlow needed)."""
    config = Config.from_json(storage.read_text(storage.join(model_dir, CONFIG_FILE)))
    return (*config.network.heads, RESIDUAL)
