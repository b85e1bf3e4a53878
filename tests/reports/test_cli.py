"""`python -m reports DIR`: the report kind follows the folder's contents."""
from __future__ import annotations

import json
import subprocess
import sys

from reports.cli import main
from tests.conftest import REPO


def test_each_kind_of_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest-00000-of-00001.jsonl").write_text(json.dumps({"track": "t", "status": "ok"}) + "\n")
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"manifest_shards": ["manifest-00000-of-00001.jsonl"]}))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(json.dumps({"scores": {}, "tracks": []}))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "history.csv").write_text("epoch,loss\n0,1.0\n")
    assert main([str(tmp_path / name) for name in ("run", "eval", "model")]) == 0
    assert "Separation run" in (tmp_path / "run" / "index.html").read_text()
    assert (tmp_path / "run" / "t" / "track.html").is_file()
    assert "Evaluation" in (tmp_path / "eval" / "index.html").read_text()
    assert "1 epoch(s) logged" in (tmp_path / "model" / "report.html").read_text()


def test_an_empty_folder_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "reports", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "no summary.json of a separation run" in done.stdout
