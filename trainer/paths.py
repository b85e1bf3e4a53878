"""Where a training run reads and writes, local or `gs://`.

Flags win, then Vertex AI's AIP_* variables, then defaults beside the model folder. Local files go
through the standard library; remote ones through tf.io.gfile (imported only when a path is remote).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import IO

DEFAULT_MODEL_DIR = "models/trained"


@dataclasses.dataclass(frozen=True)
class RunDirs:
    model_dir: str  # the exported model: SavedModel, config.json, history, curves, MODEL_CARD.md
    checkpoint_dir: str  # everything a restart needs: backup/, per-epoch weights, history.csv, config.json
    tensorboard_dir: str


def resolve_dirs(model_dir: str | None, checkpoint_dir: str | None, tensorboard_dir: str | None) -> RunDirs:
    model_dir = _clean(model_dir or os.environ.get("AIP_MODEL_DIR") or DEFAULT_MODEL_DIR)
    work = model_dir + ".work"
    return RunDirs(
        model_dir=model_dir,
        checkpoint_dir=_clean(checkpoint_dir or os.environ.get("AIP_CHECKPOINT_DIR") or join(work, "checkpoints")),
        tensorboard_dir=_clean(tensorboard_dir or os.environ.get("AIP_TENSORBOARD_LOG_DIR") or join(work, "logs")),
    )


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(*parts: str) -> str:
    return "/".join(str(part).rstrip("/") for part in parts)


def _clean(path: str) -> str:
    # "./models/" and "models" must name the same folder, so that "<model_dir>.work" is a sibling
    return path.rstrip("/") if is_remote(path) else os.path.normpath(path)


def open_file(path: str, mode: str = "r") -> IO:
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, mode)
    if "w" in mode or "a" in mode:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, mode)


def exists(path: str) -> bool:
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def remove(path: str) -> None:
    if exists(path):
        if is_remote(path):
            import tensorflow as tf

            tf.io.gfile.remove(path)
        else:
            os.remove(path)


def list_dir(path: str) -> list[str]:
    if is_remote(path):
        import tensorflow as tf

        return [name.rstrip("/") for name in tf.io.gfile.listdir(path)] if tf.io.gfile.isdir(path) else []
    return os.listdir(path) if os.path.isdir(path) else []


def copy_tree(source: str, target: str) -> None:
    """Copy a folder tree to `target` (local or remote), replacing files of the same name."""
    if not is_remote(source) and not is_remote(target):
        shutil.copytree(source, target, dirs_exist_ok=True)
        return
    import tensorflow as tf

    for folder, _, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(folder, source) if not is_remote(source) else folder[len(source):].strip("/")
        destination = join(target, relative) if relative not in ("", ".") else target
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(join(folder, name), join(destination, name), overwrite=True)
