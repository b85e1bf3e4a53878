"""The training report, from a history.csv written by the trainer's own writer."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reports.training import curve_names, parse_history, write_training_report
from tests.reports.browser import inspect_page
from trainer.history import write_history

ROWS = [{"epoch": e, "loss": 1.0 - 0.1 * e, "vocals_loss": 0.6 - 0.05 * e, "drums_loss": 0.4 - 0.05 * e,
         "val_loss": 1.1 - 0.1 * e + (0.3 if e == 2 else 0.0), "val_vocals_loss": 0.7 - 0.05 * e,
         "val_drums_loss": 0.5 - 0.05 * e, "val_vocals_sdr": 1.0 + e, "lr": 1e-3} for e in range(4)]


@pytest.fixture
def model_dir(tmp_path):
    write_history(str(tmp_path / "history.csv"), ROWS)
    return tmp_path


def test_curves_per_head_then_total_then_sdr(model_dir):
    rows = parse_history((model_dir / "history.csv").read_text())
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3]
    assert curve_names(rows) == ["vocals_loss", "drums_loss", "loss", "vocals_sdr", "lr"]
    html = Path(write_training_report(str(model_dir))).read_text()
    titles = re.findall(r'<svg[^>]*aria-label="([^"]*)"', html)
    assert titles == ["vocals loss", "drums loss", "total loss", "vocals sdr", "lr"]
    assert "best validation loss 0.8 at epoch 4" in html  # 1-based, and not the bumped epoch 3
    assert html.count("<polyline") == 2 * 3 + 1 + 1  # train+valid per loss, valid-only SDR, train-only lr


def test_report_loads_in_chromium(model_dir, browser):
    check = inspect_page(browser, Path(write_training_report(str(model_dir))).as_uri())
    assert check.errors == [] and check.title.startswith("Training run")
    assert browser.execute_script("return document.querySelectorAll('svg circle').length") == 4 * 8


def test_no_history_yet(tmp_path):
    assert "no epoch logged yet" in Path(write_training_report(str(tmp_path))).read_text()


def test_repeated_epochs_and_blank_cells(tmp_path):
    rows = parse_history("epoch,loss,val_loss\n0,1.0,NA\n1,0.9,\n1,0.8,0.7\n")
    assert rows == [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.8, "val_loss": 0.7}]
