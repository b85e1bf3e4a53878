"""What a separate run reads: input paths, folders and globs (local or gs://) expanded to files, each
named by its track; the names two inputs would share refused; the exported model checked.

Plain functions over storage paths, called by the pipeline's steps (beam_jobs/separate.py).
"""
from __future__ import annotations

import glob
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
    """Files a path, folder or glob names (a folder: the files directly in it; `**` in a glob: any depth).

    Local names are listed with os/glob rather than Beam's match, which drops a name it cannot stat (a
    symbolic link to itself, say) and skips names holding a backslash: no file may go unnoticed. A name
    that is not a folder is kept even when it cannot be opened, so that decoding reports why.
    """
    if storage.is_local(pattern):
        if os.path.isdir(pattern):
            names = [entry.path for entry in os.scandir(pattern)]
        else:  # a name that exists is taken as it is: `Song [Live].wav` is a file, not a character class
            names = [pattern] if os.path.lexists(pattern) else glob.glob(pattern, recursive=True)
        return sorted(name for name in names if not os.path.isdir(name))
    return [m.path for m in FileSystems.match([pattern])[0].metadata_list]


def inside(path: str, folder: str) -> bool:
    """Whether `path` lies under `folder` (both absolute, local or gs://)."""
    return path.startswith(folder.rstrip("/") + "/")


def expand(pattern: str, output: str) -> tuple[list[str], str | None]:
    """The files a pattern names, less those under the run's own output folder (an output inside the input
    folder must not become input on the next run), or none and the reason it names nothing usable."""
    try:
        files = matching_files(pattern)
    except Exception as error:  # noqa: BLE001 - a bad pattern must not stop the others
        return [], f"cannot list: {error}"
    taken = [path for path in files if not inside(path, output)]
    if files and not taken:
        return [], f"every file it matches is inside the output folder {output}"
    return taken, None if taken else "no file matches this path or pattern"


def count_files(patterns: list[str], output: str) -> int:
    """How many files the patterns name (bad patterns count none: the pipeline reports them)."""
    return sum(len(expand(pattern, output)[0]) for pattern in patterns)


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
