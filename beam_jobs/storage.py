"""File access inside Beam pipelines, on local paths and object storage (gs://) alike, via Beam's FileSystems
(the runner's IO and retries apply; outside pipelines, common/storage.py does the same through fsspec).

- `staged_input` / `stage_tree`: give libraries that need a real local path (ffmpeg, libsndfile,
  TensorFlow) a local copy of a remote file or folder; local paths are used as they are.
- `atomic_output` / `write_bytes_atomic` / `write_text_atomic`: write under a temporary sibling name,
  then rename into place, so no reader ever sees a half-written file under its final name. Temporary
  names carry their writer (host and process); before writing a file, the partial siblings that a
  dead process on this host left behind (a run killed with SIGKILL) are removed. Live writers' files,
  and other hosts', are never touched.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import posixpath
import shutil
import tempfile
import uuid
from typing import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

PARTIAL = ".partial"  # marks temporary siblings; never part of a final name
_RAW = CompressionTypes.UNCOMPRESSED  # bytes as stored: never gunzip a `.gz` behind the caller's back
_CHUNK = 8 << 20


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) is None


def absolute(path: str) -> str:
    """Local paths made absolute (workers may run elsewhere); URLs unchanged."""
    return os.path.abspath(path) if is_local(path) else path


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def basename(path: str) -> str:
    return FileSystems.split(path)[1] if not is_local(path) else os.path.basename(path)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=_RAW) as source:
        return source.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def delete_quietly(paths: list[str]) -> None:
    """Best-effort cleanup of temporary files; a failure here must not hide the original error."""
    for path in paths:
        try:
            FileSystems.delete([path])
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _split(path: str) -> tuple[str, str]:
    return os.path.split(path) if is_local(path) else FileSystems.split(path)


def _owner() -> str:
    """This process, as written into its temporary names: a hash of the host name, and the pid."""
    return f"{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]}-{os.getpid()}"


def temp_sibling(path: str) -> str:
    """A unique hidden name in the same folder that keeps the extension (libsndfile picks formats by it)
    and names its writer: `.<stem>-<host>-<pid>-<random>.partial.<ext>`."""
    folder, name = _split(path)
    stem, dot, ext = name.partition(".")
    hidden = f".{stem}-{_owner()}-{uuid.uuid4().hex[:8]}{PARTIAL}{dot}{ext}"
    return os.path.join(folder, hidden) if is_local(path) else join(folder, hidden)


def remove_stale_partials(path: str) -> list[str]:
    """Delete the temporary siblings of `path` whose writer was a process on this host that no longer
    runs (killed mid-write); returns what was removed. Best effort: listing errors are ignored."""
    folder, name = _split(path)
    stem, dot, ext = name.partition(".")
    pattern = re.compile(rf"\.{re.escape(stem)}-([0-9a-f]{{6}})-(\d+)-[0-9a-f]{{8}}{re.escape(PARTIAL + dot + ext)}$")
    host = _owner().split("-")[0]
    try:
        if is_local(path):
            siblings = [os.path.join(folder, entry) for entry in os.listdir(folder or ".")]
        else:
            siblings = [m.path for m in FileSystems.match([join(folder, f".{stem}-*{PARTIAL}*")])[0].metadata_list]
    except Exception:  # noqa: BLE001 - a folder that does not exist yet has nothing stale
        return []
    stale = []
    for sibling in siblings:
        found = pattern.match(_split(sibling)[1])
        if found and found.group(1) == host and not _alive(int(found.group(2))):
            stale.append(sibling)
    delete_quietly(stale)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: asks whether the process exists, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but belongs to someone else
    return True


@contextlib.contextmanager
def staged_input(path: str) -> Iterator[str]:
    """Yield a local path holding the file's bytes: the path itself if local, else a temporary copy."""
    if is_local(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="staged-") as tmp:
        local = os.path.join(tmp, basename(path))  # keep the full name: decoders look at suffixes
        with FileSystems.open(path, compression_type=_RAW) as source, open(local, "wb") as target:
            shutil.copyfileobj(source, target, _CHUNK)
        yield local


def stage_tree(path: str, local_dir: str | None = None) -> str:
    """Copy a remote folder (e.g. an exported model) to a local folder and return it; local paths pass."""
    if is_local(path):
        return path
    local_dir = local_dir or tempfile.mkdtemp(prefix="staged-tree-")
    prefix = path.rstrip("/") + "/"
    for metadata in FileSystems.match([prefix + "**"])[0].metadata_list:
        relative = metadata.path[len(prefix):]
        if not relative or relative.endswith("/"):
            continue  # folder placeholder objects
        target = os.path.join(local_dir, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(metadata.path, compression_type=_RAW) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
    return local_dir


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a local path to write; on success it is renamed to `path`, on failure removed.

    Local targets are written next to their final name (rename is atomic within a folder); remote
    ones are written locally, uploaded to a temporary sibling and renamed with FileSystems.rename.
    """
    remove_stale_partials(path)
    if is_local(path):
        created = _missing_folders(os.path.dirname(os.path.abspath(path)))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        partial = temp_sibling(path)
        done = False
        try:
            with _naming_a_full_device(partial):
                yield partial
            os.replace(partial, path)
            done = True
        finally:
            if os.path.exists(partial):
                os.remove(partial)
            if not done:  # a failed track leaves no folder behind (other writers' files keep theirs)
                for folder in created:
                    try:
                        os.rmdir(folder)
                    except OSError:
                        break
        return
    with tempfile.TemporaryDirectory(prefix="atomic-") as tmp:
        local = os.path.join(tmp, posixpath.basename(temp_sibling(path)))
        with _naming_a_full_device(local):
            yield local
        _upload_and_rename(local, path)


FULL_BELOW = 64 << 10  # bytes free under which a failed write is put down to a full device


@contextlib.contextmanager
def _naming_a_full_device(local: str) -> Iterator[None]:
    """Re-raise a write that failed on a full device as ENOSPC, naming it: encoders report a full disk
    as their own error ("LibsndfileError: System error.", a broken pipe from ffmpeg), which says nothing."""
    try:
        yield
    except Exception as error:
        folder = os.path.dirname(local)
        free = shutil.disk_usage(folder).free
        if free < FULL_BELOW and not (isinstance(error, OSError) and error.errno == errno.ENOSPC):
            raise OSError(errno.ENOSPC, f"No space left on device: {free} bytes free in {folder} "
                                        f"({type(error).__name__}: {error})") from error
        raise


def check_writable(folder: str) -> None:
    """Write and remove a small probe file in `folder` (local or remote), so that a read-only, missing or
    forbidden output is refused before any work; raises the OSError (or storage error) that says why."""
    probe = join(folder, f".write-check-{_owner()}-{uuid.uuid4().hex[:8]}")
    write_bytes_atomic(probe, b"")
    delete_quietly([probe])


def _missing_folders(folder: str) -> list[str]:
    """The folders makedirs would create for `folder`, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _upload_and_rename(local: str, path: str) -> None:
    partial = temp_sibling(path)
    try:
        with open(local, "rb") as source, FileSystems.create(partial, compression_type=_RAW) as target:
            shutil.copyfileobj(source, target, _CHUNK)
        FileSystems.rename([partial], [path])
    except BaseException:
        delete_quietly([partial])
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_output(path) as local, open(local, "wb") as target:
        target.write(data)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
