"""Regenerate docs/report-screenshot.png: a track page of a real separation run, in headless Chromium.

    atsep separate examples/slow_motion_dream.mp3 --output /tmp/demo_out --model_dir model/bundled
    python -m reports /tmp/demo_out
    PYTHONPATH=. python docs/report_screenshot.py /tmp/demo_out/slow_motion_dream/track.html
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

from tests.reports.browser import inspect_page, start_browser

OUT = Path(__file__).with_name("report-screenshot.png")


def main(page: str) -> None:
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryDirectory() as tmp:
        driver = start_browser(profile)
        try:
            driver.set_window_size(1120, 1700)
            check = inspect_page(driver, Path(page).resolve().as_uri())
            if check.errors or check.bad_audio() or check.bad_images():
                raise SystemExit(f"the page does not load cleanly: {check}")
            # down to the plot's bottom edge, without the scrollbar
            bottom = driver.execute_script(
                "return document.querySelector('img.plot').getBoundingClientRect().bottom")
            width = driver.execute_script("return document.documentElement.clientWidth")
            driver.save_screenshot(f"{tmp}/page.png")
        finally:
            driver.quit()
        image = Image.open(f"{tmp}/page.png").convert("RGB").crop((0, 0, width, int(bottom) + 16))
    # 128 colours keep the spectrograms readable and the file near 150 KB
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(OUT, optimize=True)
    print(f"{OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(sys.argv[1])
