"""The seed's `main.py` commands, run for real on a tiny dataset and model."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

import main
from tests.trainer.records import write_dataset


def test_train_then_test_through_the_seed_commands(tmp_path, tiny_config):
    data = write_dataset(tmp_path / "records", tiny_config, {"train": 4})
    config_file = tmp_path / "config.json"
    config_file.write_text(tiny_config.to_json())
    models = tmp_path / "models"

    assert main.main(["--sampling_rate", "11025", "--train", "True", "--epoch", "1", "--batch", "2",
                      "--model_save_path", str(models), "--data", str(data), "--config", str(config_file)]) == 0
    trained = models / main.TRAINED_NAME
    assert json.loads((trained / "config.json").read_text())["training"]["epochs"] == 1

    song = tmp_path / "song.wav"
    mix = (0.2 * np.random.default_rng(0).standard_normal((22050, 2))).astype(np.float32)
    sf.write(song, mix, 22050, subtype="FLOAT")
    out = tmp_path / "out"
    assert main.main(["--sampling_rate", "11025", "--test", str(song), "--model_save_path", str(models),
                      "--output", str(out)]) == 0
    stems = [sf.read(out / "song" / f"{name}.wav", always_2d=True) for name in ("vocals", "drums", "residual")]
    assert all(rate == 22050 and waveform.shape == mix.shape for waveform, rate in stems)
    assert list((out / "song").glob("*.png"))


def test_test_falls_back_to_the_bundled_model_beside_it(tmp_path):
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "config.json").write_text("{}")
    assert main.saved_model_dir(str(tmp_path)) == tmp_path / "default"
    assert main.saved_model_dir(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
