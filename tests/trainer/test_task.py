"""`python -m trainer.task` end to end on tiny shards: train, restart, export, separate, refuse bad input."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.trainer.records import write_dataset


ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _kill_during_second_epoch(argv: list[str]) -> str:
    """Run the trainer in a process and SIGKILL it once its second epoch has begun; returns its output."""
    process = subprocess.Popen([sys.executable, "-u", "-m", "trainer.task", *argv], cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Epoch 2/"):
            process.kill()
            break
    process.wait(timeout=60)
    return "".join(lines)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three runs on one checkpoint folder: 1 epoch; a process killed in epoch 2 of 3; then `--epochs 2`,
    which must train epoch 2 only."""
    from model.config import Config
    from reports.training import HISTORY_FILE
    from trainer import task
    from trainer.history import read_history

    root = tmp_path_factory.mktemp("train")
    config = Config().replace(  # the tiny_config fixture's values (fixtures cannot feed module scope)
        network__filters=(4, 8, 16), network__patch_frames=32, network__dropout=0.0,
        data__patch_seconds=2.0, training__batch_size=2, training__epochs=1, training__steps_per_epoch=2)
    config.save(root)
    write_dataset(root / "data", config, {"train": 6, "valid": 2})
    argv = ["--data", str(root / "data"), "--model_dir", str(root / "model"),
            "--config", str(root / "config.json"), "--data_description", "generated sine patches"]
    logs = [_main(task, argv + ["--epochs", "1"])]
    first_history = read_history(str(root / "model" / HISTORY_FILE))
    logs.append(_kill_during_second_epoch(argv + ["--epochs", "3", "--steps_per_epoch", "100000"]))
    logs.append(_main(task, argv + ["--epochs", "2"]))
    return {"root": root, "model": root / "model", "logs": logs, "first_history": first_history, "argv": argv}


def _main(task, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert task.main(argv) == 0
    return out.getvalue()


def test_restart_continues_after_the_last_completed_epoch(trained):
    from reports.training import HISTORY_FILE
    from trainer.history import read_history

    history = read_history(str(trained["model"] / HISTORY_FILE))
    assert [row["epoch"] for row in history] == [0, 1]
    assert history[0] == trained["first_history"][0]  # epoch 1 was not trained again
    killed, last = trained["logs"][1:]
    assert "Epoch 2/3" in killed and "Epoch 1/3" not in killed, killed[-2000:]
    assert "Epoch 2/2" in last and "Epoch 1/2" not in last
    checkpoints = trained["root"] / "model.work" / "checkpoints"
    assert (checkpoints / "epoch-001.weights.h5").exists() and (checkpoints / "epoch-002.weights.h5").exists()


def test_per_head_losses_are_logged_and_add_up(trained):
    from reports.training import HISTORY_FILE
    from trainer.history import read_history

    for row in read_history(str(trained["model"] / HISTORY_FILE)):
        for prefix in ("", "val_"):
            heads = row[f"{prefix}vocals_loss"] + row[f"{prefix}drums_loss"]
            assert heads == pytest.approx(row[f"{prefix}loss"], rel=1e-4)


def test_validation_sdr_and_epoch_time_are_logged_and_select_the_export(trained):
    import math

    from reports.training import HISTORY_FILE
    from trainer.history import read_history

    rows = read_history(str(trained["model"] / HISTORY_FILE))
    for row in rows:
        assert math.isfinite(row["val_sdr_vocals"]) and math.isfinite(row["val_sdr_drums"])
        assert row["val_sdr"] == pytest.approx((row["val_sdr_vocals"] + row["val_sdr_drums"]) / 2, abs=1e-4)
        assert row["epoch_s"] > 0
    best = max(rows, key=lambda row: row["val_sdr"])
    card = (trained["model"] / "MODEL_CARD.md").read_text()
    assert f"exported epoch {best['epoch'] + 1} (highest val_sdr)" in card and "val_sdr_vocals" in card


def test_exported_model_separates_a_waveform(trained):
    from model.separator import Separator

    separator = Separator.load(trained["model"])
    rate = 22050
    t = np.arange(int(0.8 * rate))[:, None] / rate
    mix = (0.3 * np.sin(2 * np.pi * 330 * t) * np.array([[1.0, 0.6]])).astype(np.float32)
    stems = separator.separate(mix, rate)
    assert sorted(stems) == ["drums", "residual", "vocals"]
    assert all(stem.shape == mix.shape and np.isfinite(stem).all() for stem in stems.values())
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-4)


def test_model_folder_has_curves_history_and_card(trained):
    model = trained["model"]
    assert (model / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    assert "vocals" in (model / "report.html").read_text()  # the training run's HTML report
    card = (model / "MODEL_CARD.md").read_text()
    assert "generated sine patches" in card and "MUSDB18" in card and "non-commercial" in card
    assert "exported epoch" in card and "val_vocals_loss" in card
    assert (trained["root"] / "model.work" / "logs" / "train").is_dir()  # TensorBoard


def test_restart_with_another_network_is_refused(trained, tmp_path, capsys):
    from model.config import Config
    from trainer import task

    Config.load(trained["root"]).replace(network__filters=(4, 8, 32)).save(tmp_path)
    argv = trained["argv"] + ["--epochs", "3", "--config", str(tmp_path / "config.json")]
    assert task.main(argv) == 2
    assert "another network config" in capsys.readouterr().err


def test_sample_rate_mismatch_is_refused(tmp_path, tiny_config, capsys):
    from trainer import task

    write_dataset(tmp_path / "data", tiny_config, {"train": 1}, rate=22050, samples=8000)
    code = task.main(["--data", str(tmp_path / "data"), "--model_dir", str(tmp_path / "model")])
    assert code == 2
    error = capsys.readouterr().err
    assert "22050 Hz" in error and "11025 Hz" in error
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.work").exists()


def test_missing_or_broken_dataset_json_is_refused(tmp_path, capsys):
    from trainer import task

    assert task.main(["--data", str(tmp_path), "--model_dir", str(tmp_path / "model")]) == 2
    assert "dataset.json is missing" in capsys.readouterr().err
    (tmp_path / "dataset.json").write_text('{"schema_version": 1, "splits": {}}')
    assert task.main(["--data", str(tmp_path), "--model_dir", str(tmp_path / "model")]) == 2
    assert "no numeric 'sample_rate'" in capsys.readouterr().err


def test_a_folder_that_is_not_a_model_is_not_replaced(tmp_path, tiny_config, capsys):
    from trainer import task

    write_dataset(tmp_path / "data", tiny_config, {"train": 1}, samples=8000)
    (tmp_path / "models" / "default").mkdir(parents=True)
    assert task.main(["--data", str(tmp_path / "data"), "--model_dir", str(tmp_path / "models")]) == 2
    assert "not an exported model" in capsys.readouterr().err
    assert (tmp_path / "models" / "default").is_dir()


def test_help_does_not_import_tensorflow():
    code = ("import sys\nfrom trainer.task import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'model.records') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--data_description" in result.stdout and "--strategy" in result.stdout
    assert result.stdout.strip().endswith("[]")


def test_vertex_ai_variables_stand_in_for_missing_flags(monkeypatch):
    from trainer.paths import resolve_dirs

    monkeypatch.setenv("AIP_MODEL_DIR", "gs://bucket/model/")
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", "gs://bucket/checkpoints")
    monkeypatch.delenv("AIP_TENSORBOARD_LOG_DIR", raising=False)
    dirs = resolve_dirs(None, None, None)
    assert (dirs.model_dir, dirs.checkpoint_dir) == ("gs://bucket/model", "gs://bucket/checkpoints")
    assert dirs.tensorboard_dir == "gs://bucket/model.work/logs"
    assert resolve_dirs("./models/x/", None, "tb").checkpoint_dir == "gs://bucket/checkpoints"
    monkeypatch.delenv("AIP_CHECKPOINT_DIR")
    assert resolve_dirs("./models/x/", None, None).checkpoint_dir == "models/x.work/checkpoints"


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}', True),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}', False),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
])
def test_only_the_chief_writes(monkeypatch, tf_config, chief):
    from trainer.training import is_chief

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    assert is_chief() is chief


def test_averaging_exports_the_mean_of_the_last_epochs_weights(trained, tmp_path):
    from model.config import Config
    from model.export import export_model
    from model.separator import Separator
    from trainer import callbacks, network
    from trainer.paths import RunDirs
    from trainer.publish import publish
    from trainer.training import TrainedRun

    config = Config.load(trained["model"]).replace(training__average_epochs=2)
    checkpoints = str(trained["root"] / "model.work" / "checkpoints")
    _, unet = network.build_training_model(config, "float32")
    with contextlib.redirect_stdout(io.StringIO()):
        publish(TrainedRun(unet, "val_sdr", chief=True), config,
                RunDirs(str(tmp_path / "averaged"), checkpoints, str(tmp_path / "logs")), {})
    # the reference: the two epochs' weights averaged here, and each epoch on its own
    epochs = []
    for epoch in (1, 2):
        unet.load_weights(callbacks.epoch_weights_path(checkpoints, epoch))
        epochs.append(unet.get_weights())
        export_model(unet, config, tmp_path / f"epoch-{epoch}")
    unet.set_weights([(first + second) / 2 for first, second in zip(*epochs)])
    export_model(unet, config, tmp_path / "mean")
    magnitude = np.random.default_rng(0).random(
        (1, config.network.patch_frames, config.stft.bins, config.audio.channels), dtype=np.float32)
    masks = {name: Separator.load(tmp_path / name).mask_fn(magnitude)
             for name in ("averaged", "mean", "epoch-1", "epoch-2")}
    for head in config.network.heads:
        np.testing.assert_allclose(masks["averaged"][head], masks["mean"][head], atol=1e-6)
        for epoch in ("epoch-1", "epoch-2"):
            assert np.abs(masks["averaged"][head] - masks[epoch][head]).max() > 1e-4
    assert "exported the mean of the weights of epochs 1-2" in (tmp_path / "averaged" / "MODEL_CARD.md").read_text()
