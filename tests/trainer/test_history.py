"""History bookkeeping across restarts: duplicate rows, trimming to the restored epoch, the best epoch."""
from __future__ import annotations

from trainer.history import best_row, read_history, trim_history

CSV = """epoch,loss,val_loss
0,3.0,2.5
1,2.0,2.2
1,1.9,2.1
2,1.5,2.4
3,nan,nan
"""


def test_an_epoch_logged_twice_keeps_its_last_row(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    rows = read_history(str(path))
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3]
    assert rows[1] == {"epoch": 1, "loss": 1.9, "val_loss": 2.1}


def test_values_an_epoch_lacks_are_left_out(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,1.5,NA\n")
    assert read_history(str(path)) == [{"epoch": 0, "loss": 1.5}]


def test_trim_keeps_only_epochs_the_backup_completed(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    trim_history(str(path), 2)
    assert [row["epoch"] for row in read_history(str(path))] == [0, 1]
    trim_history(str(path), 0)
    assert not path.exists()


def test_best_row_is_the_lowest_monitored_value_else_the_last(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    rows = read_history(str(path))
    assert best_row(rows, "val_loss")["epoch"] == 1  # a NaN epoch is never the best
    assert best_row(rows, "val_missing")["epoch"] == 3
    assert best_row([], "val_loss") is None


def test_model_card_states_musdb_terms_and_the_exported_losses():
    from model.config import Config
    from trainer.model_card import render_model_card

    best = {"epoch": 4, "loss": 0.5, "val_loss": 0.75, "val_vocals_loss": 0.25}
    data = {"description": "MUSDB18-7 previews", "location": "gs://b/records", "info": {
        "sample_rate": 11025, "channels": 2,
        "splits": {"train": {"patches": 160, "tracks": 80}, "valid": {"patch_count": 20, "track_count": 14}}}}
    card = render_model_card(Config(), data, best, epochs_run=6)
    assert "**This model was trained on MUSDB18 material.**" in card and "non-commercial" in card
    assert "exported epoch 5" in card and "val_vocals_loss 0.25000" in card
    assert "train: 160 patches, 80 tracks" in card and "valid: 20 patches, 14 tracks" in card
    assert "16/32/64/128/256 filters" in card and "random speed" not in card and "on the residual" not in card
    faster = render_model_card(Config().replace(training__speed_semitones=1.5), data, best, epochs_run=6)
    assert "each song at a random speed within +-1.5 semitones" in faster
    with_residual = render_model_card(Config().replace(training__residual_loss=True), data, best, epochs_run=6)
    assert "L1 loss on mask x mix magnitude per head and on the residual;" in with_residual
    in_phase = render_model_card(Config().replace(training__phase_sensitive_target=True), data, best, epochs_run=6)
    assert "per head against the part of each stem's magnitude in phase with the mix;" in in_phase
    assert "in phase" not in card
    squared = render_model_card(Config().replace(training__loss="l2"), data, best, epochs_run=6)
    assert "; L2 loss on mask x mix magnitude per head;" in squared and "; L1 loss on mask" in card
    assert "; stems remixed across songs, random gains" in card
    half_remixed = render_model_card(Config().replace(training__remix_probability=0.5), data, best, epochs_run=6)
    assert "; stems remixed across songs in 50% of examples, random gains" in half_remixed
    never_remixed = render_model_card(Config().replace(training__remix_probability=0.0), data, best, epochs_run=6)
    assert "; each example's stems from one song, random gains" in never_remixed
    other = render_model_card(Config(), {"description": "my own stems"}, None, epochs_run=0)
    assert "**This model was trained" not in other and "non-commercial" in other
