"""Shared fixtures: a tiny config and the environment every test runs in."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent (only developers' machines have it)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_config():
    """A config small enough that training steps and separation take well under a second."""
    from model.config import Config

    return Config().replace(
        network__filters=(4, 8, 16), network__patch_frames=32, network__dropout=0.0,
        data__patch_seconds=2.0, training__batch_size=2, training__epochs=1, training__steps_per_epoch=2)
