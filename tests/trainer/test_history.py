"""History bookkeeping across restarts: duplicate rows, trimming to the restored epoch, the best epoch."""
from __future__ import annotations

from trainer.history import best_row, read_history, trim_history

CSV = """epoch,loss,val_loss
0,3.0,2.5
1,2.0,2.2
1,1.9,2.1
2,1.5,2.4
"""


def test_an_epoch_logged_twice_keeps_its_last_row(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    rows = read_history(str(path))
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[1] == {"epoch": 1, "loss": 1.9, "val_loss": 2.1}


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
    assert best_row(rows, "val_loss")["epoch"] == 1
    assert best_row(rows, "val_missing")["epoch"] == 2
    assert best_row([], "val_loss") is None
