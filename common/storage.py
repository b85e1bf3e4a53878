"""File access outside Beam pipelines, for local paths and object storage (gs://) alike, through fsspec.

The trainer, the reports and the retrain chain read and write through these functions; Beam jobs use
Beam's FileSystems inside their pipelines instead (beam_jobs/storage.py), where the runner's IO and retries
apply. Writes are atomic: a local file is written under a temporary sibling name and renamed into place;
an object is uploaded in one request, which object storage makes visible all at once.

gs:// goes through gcsfs's plain `GCSFileSystem` (not the experimental class that fsspec's registry picks,
which probes every call over gRPC), with listings never cached: other processes (Beam jobs, TensorFlow)
write the same folders. `STORAGE_EMULATOR_HOST` points it at a local server, as it does Beam's GCS IO.
"""
from __future__ import annotations

import os
import tempfile
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

_LOCAL = LocalFileSystem(auto_mkdir=True)  # writing a file creates its folder, as object storage does
_REMOTE: dict[tuple[str, str], fsspec.AbstractFileSystem] = {}


def is_remote(path: str) -> bool:
    return "://" in str(path)


def absolute(path: str) -> str:
    """Local paths made absolute; URLs unchanged."""
    return str(path) if is_remote(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    """Join a folder (local path or URL) and names with '/'."""
    return "/".join([str(base).rstrip("/"), *(str(part).strip("/") for part in parts)])


def filesystem(path: str) -> fsspec.AbstractFileSystem:
    """The filesystem that holds `path`: local, or one client per scheme (and emulator, in tests)."""
    if not is_remote(path):
        return _LOCAL
    scheme = str(path).split("://", 1)[0]
    key = (scheme, os.environ.get("STORAGE_EMULATOR_HOST", ""))
    if key not in _REMOTE:
        if scheme in ("gs", "gcs"):
            from gcsfs.core import GCSFileSystem

            _REMOTE[key] = GCSFileSystem(use_listings_cache=False, skip_instance_cache=True)
        else:
            _REMOTE[key] = fsspec.filesystem(scheme, use_listings_cache=False, skip_instance_cache=True)
    return _REMOTE[key]


def exists(path: str) -> bool:
    return filesystem(path).exists(path)


def open_file(path: str, mode: str = "r") -> IO:
    """An open file, text or binary by `mode`; writing creates missing local folders."""
    return filesystem(path).open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def read_bytes(path: str) -> bytes:
    return filesystem(path).cat_file(path)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes_atomic(path: str, data: bytes) -> None:
    """No reader ever sees half a file under its final name."""
    if is_remote(path):
        filesystem(path).pipe_file(path, data)
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(partial, 0o644)  # mkstemp makes 0600 files; pages and models are read by others
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def remove(path: str) -> None:
    """Delete a file; nothing happens when it is not there."""
    if exists(path):
        filesystem(path).rm_file(path)


def list_dir(path: str) -> list[str]:
    """Names directly in a folder; [] when there is no such folder."""
    fs = filesystem(path)
    if not fs.isdir(path):
        return []
    return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))


def list_files(root: str) -> list[str]:
    """Every file under a folder, at any depth, as full paths (URLs keep their scheme), sorted."""
    root = absolute(root)
    found = filesystem(root).find(root)
    if not is_remote(root):
        return sorted(found)
    scheme = str(root).split("://", 1)[0]
    return sorted(f"{scheme}://{path}" for path in found)


def copy_tree(source: str, target: str) -> None:
    """Copy a folder's files to `target` (local or remote), replacing files of the same name."""
    prefix = absolute(source).rstrip("/") + "/"
    for path in list_files(source):
        write_bytes_atomic(join(target, path[len(prefix):]), read_bytes(path))


def stage_tree(path: str) -> str:
    """A local folder holding a remote folder's files (e.g. an exported model); local paths pass."""
    if not is_remote(path):
        return path
    local = tempfile.mkdtemp(prefix="staged-tree-")
    copy_tree(path, local)
    return local

