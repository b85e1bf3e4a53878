"""The page checker itself: it must catch what the report tests rely on it to catch."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.reports.browser import inspect_page

BROKEN = """<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>t</title>
</head><body><audio preload="metadata" src="tone.wav"></audio><audio preload="metadata" src="gone.wav">
</audio><img src="gone.png" alt="x"><script>undefinedFunction();</script></body></html>"""


def test_checker_sees_missing_audio_images_and_script_errors(tmp_path, browser, serve):
    sf.write(tmp_path / "tone.wav", np.zeros((11025, 1), np.float32), 22050)
    (tmp_path / "page.html").write_text(BROKEN)
    check = inspect_page(browser, f"{serve(tmp_path)}/page.html")
    assert [a["src"].rsplit("/", 1)[1] for a in check.bad_audio()] == ["gone.wav"]
    good = next(a for a in check.audio if a["src"].endswith("tone.wav"))
    assert abs(good["duration"] - 0.5) < 1e-3
    assert len(check.bad_images()) == 1
    assert any("undefinedFunction" in error for error in check.errors)
    assert any("404" in error for error in check.errors)  # the missing files, as the console shows them
