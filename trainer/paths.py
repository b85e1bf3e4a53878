"""Where a training run reads and writes, local or `gs://`: flags win, then Vertex AI's AIP_* variables,
then defaults beside the model folder. Files are read and written through common/storage.py."""
from __future__ import annotations

import dataclasses
import os

from common import storage

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
        checkpoint_dir=_clean(checkpoint_dir or os.environ.get("AIP_CHECKPOINT_DIR")
                              or storage.join(work, "checkpoints")),
        tensorboard_dir=_clean(tensorboard_dir or os.environ.get("AIP_TENSORBOARD_LOG_DIR")
                               or storage.join(work, "logs")),
    )


def _clean(path: str) -> str:
    # "./models/" and "models" must name the same folder, so that "<model_dir>.work" is a sibling
    return path.rstrip("/") if storage.is_remote(path) else os.path.normpath(path)
