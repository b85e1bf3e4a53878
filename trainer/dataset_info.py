"""Reads and checks `DATA/dataset.json`, the preprocess job's summary of its shards.

Known fields: {"schema_version": 1, "sample_rate": int, "channels": int,
               "splits": {"train": {"patches": n, "tracks": n, ...}, "valid": {...}}}
("patch_count" / "track_count" are read too).
Anything else is carried along (it goes into the model card) but not relied on.
"""
from __future__ import annotations

import json
from typing import Any

from common import storage
from model.config import DATASET_FILE, Config
from model.frontend import records_rate


class DatasetError(ValueError):
    """The data folder cannot be trained from with this config."""


def read_dataset_info(data_dir: str) -> dict[str, Any]:
    path = storage.join(data_dir, DATASET_FILE)
    if not storage.exists(path):
        raise DatasetError(f"{path} is missing: is {data_dir!r} the output folder of `atsep preprocess`?")
    with storage.open_file(path) as handle:
        try:
            info = json.load(handle)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(info, dict):
        raise DatasetError(f"{path} should hold a JSON object, not {type(info).__name__}")
    return info


def check_dataset(info: dict[str, Any], config: Config) -> None:
    """Refuse data the network cannot be trained on: another rate or channel count, no train split."""
    rate, expected = _number(info, "sample_rate"), records_rate(config)
    if rate != expected:
        raise DatasetError(
            f"the records are at {rate} Hz but the config trains on records at {expected} Hz "
            f"({config.data.rate_factor} x its {config.audio.sample_rate} Hz): preprocess again with this config")
    channels = info.get("channels", config.audio.channels)
    if channels != config.audio.channels:
        raise DatasetError(f"the records have {channels} channels but the config expects "
                           f"{config.audio.channels}")
    version = info.get("schema_version")
    if version is not None and version != 1:
        raise DatasetError(f"dataset.json schema_version {version} is not supported (expected 1)")


COUNT_KEYS = {"patches": ("patches", "patch_count"), "tracks": ("tracks", "track_count")}


def split_sizes(info: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{split: {"patches": n, "tracks": n}} for the splits dataset.json describes; counts it lacks are left out."""
    splits = info.get("splits")
    sizes = {}
    for split, summary in (splits.items() if isinstance(splits, dict) else ()):
        if isinstance(summary, dict):
            counts = {name: next((summary[key] for key in keys if _is_number(summary.get(key))), None)
                      for name, keys in COUNT_KEYS.items()}
            sizes[split] = {name: int(count) for name, count in counts.items() if count is not None}
    return sizes


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(info: dict[str, Any], key: str) -> int:
    value = info.get(key)
    if not _is_number(value):
        raise DatasetError(f"dataset.json has no numeric {key!r} (got {value!r})")
    return int(value)
