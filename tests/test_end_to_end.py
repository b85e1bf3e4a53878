"""The whole product once, on tiny generated songs: generate -> preprocess -> train -> separate."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from atsep import synth
from beam_jobs import preprocess, run_summary, separate
from audio import codec
from trainer import task


def test_generate_preprocess_train_separate(tmp_path, tiny_config):
    songs, records, model_dir, out = (tmp_path / name for name in ("songs", "records", "model", "out"))
    config_file = tmp_path / "config.json"
    config_file.write_text(tiny_config.to_json())

    assert synth.main(["--output", str(songs), "--count", "3", "--seconds", "3", "--test-count", "1"]) in (0, None)
    assert preprocess.main(["--input", str(songs), "--output", str(records), "--config", str(config_file)]) == 0
    dataset = json.loads((records / "dataset.json").read_text())
    assert dataset["splits"]["train"]["patch_count"] > 0

    assert task.main(["--data", str(records), "--model_dir", str(model_dir), "--config", str(config_file),
                      "--epochs", "1", "--steps_per_epoch", "2"]) == 0
    assert (model_dir / "saved_model").is_dir() and (model_dir / "config.json").is_file()

    test_songs = sorted((songs / "test").glob("*.stem.mp4"))
    assert separate.main([str(songs / "test" / "*.stem.mp4"), "--output", str(out),
                          "--model_dir", str(model_dir), "--subtype", "FLOAT"]) == 0
    for song in test_songs:
        mix, rate = codec.decode(song)
        track = out / song.name[: -len(".stem.mp4")]
        stems = {}
        for name in ("vocals", "drums", "residual"):
            stems[name], stem_rate = sf.read(track / f"{name}.wav", dtype="float32", always_2d=True)
            assert stem_rate == rate and stems[name].shape == mix.shape
        np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-5)
        assert list(track.glob("*.png"))
    manifest = list(run_summary.read_records(str(out)))
    assert len(manifest) == len(test_songs) and all(line["status"] == "ok" for line in manifest)
