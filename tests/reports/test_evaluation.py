"""The evaluation report, from files in the exact format `atsep evaluate` writes (its own writer)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from reports.evaluation import render_evaluation, write_evaluation_report
from reports.html import esc
from tests.reports.browser import inspect_page
from trainer import evaluate

TARGETS = ("vocals", "drums", "residual")
TRACKS = ("Song A - One", "Song <B> & Two")
SVG_SIZES = "return Array.from(document.querySelectorAll('svg')).map(s => s.getBBox().width);"


def _scores(offset: float) -> dict:
    """Distinct, recognisable dB values; mixture drums SIR silent (NaN, written as null)."""
    return {method: {target: {metric: (math.nan if (method, target, metric) == ("mixture", "drums", "SIR")
                                       else offset + 10 * m + t + 0.25 * k)
                              for k, metric in enumerate(evaluate.METRICS)}
                     for t, target in enumerate(TARGETS)}
            for m, method in enumerate(evaluate.METHODS)}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    (out / "tracks").mkdir()
    per_track = {name: _scores(offset) for name, offset in zip(TRACKS, (-3.0, 1.0))}
    for name, scores in per_track.items():
        evaluate._write_json(out / "tracks" / f"{name}.json", {"track": name, "split": "valid", "scores": scores})
    evaluate._write_json(out / "summary.json", {
        "root": "data/x", "split": "valid", "model_dir": "models/m", "model_version": "abc",
        "methods": list(evaluate.METHODS), "targets": list(TARGETS), "metrics": list(evaluate.METRICS),
        "tracks_scored": 2, "tracks": sorted(per_track), "skipped": {"Bad": "DecodeError: no audio"},
        "scores": evaluate.summarise(per_track, TARGETS), "legend": evaluate.LEGEND})
    write_evaluation_report(str(out))
    return out


def test_table_has_model_mixture_and_oracle_rows(eval_dir):
    html = (eval_dir / "index.html").read_text()
    median = html.split("<h2>Median over tracks</h2>")[1].split("</table>")[0]
    rows = {m.group(1): re.findall(r'<td class="num">([^<]*)</td>', m.group(2))
            for m in re.finditer(r"<tr><th>(\w+)</th>(.*?)</tr>", median)}
    assert list(rows) == ["model", "mixture", "oracle"]
    # medians of -3 and 1 are -1; model vocals SDR/SIR/SAR = -1, -0.75, -0.5; drums SIR of the mixture n/a
    assert rows["model"][:3] == ["-1.0", "-0.8", "-0.5"]
    assert rows["mixture"][4] == "n/a" and rows["oracle"][0] == "19.0"
    assert "Song &lt;B&gt; &amp; Two" in html and "<B>" not in html
    assert "DecodeError: no audio" in html
    assert esc(evaluate.LEGEND) in html  # how evaluate took the scores, in its own words


def test_one_chart_per_metric_and_per_track(eval_dir, browser):
    check = inspect_page(browser, (eval_dir / "index.html").as_uri())
    assert check.errors == [] and check.title == "Evaluation: valid split"
    widths = browser.execute_script(SVG_SIZES)
    assert len(widths) == 3 + len(TRACKS) and min(widths) > 100  # rendered, not empty


def test_scores_given_directly_or_missing(tmp_path):
    html = render_evaluation({"scores": {}}, {"x": {"model": {"vocals": {"SDR": 4.0}}}})
    assert "<svg" in html and "4" in html
    with pytest.raises(FileNotFoundError):
        write_evaluation_report(str(tmp_path))
