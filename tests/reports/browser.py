"""A real headless Chromium (Debian's chromium + chromedriver, driven by Selenium) to check pages.

`inspect_page(driver, url)` loads a page and reports what a person would notice: console errors,
audio elements whose source does not load (or loads with no duration), images that do not load.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
         "--window-size=1200,900")

# every <audio>: its resolved source, readyState (1 = metadata), duration and error code
AUDIO_STATE = """return Array.from(document.querySelectorAll('audio')).map(a => ({
  src: a.currentSrc || a.src, ready: a.readyState, duration: a.duration,
  error: a.error ? a.error.code : null}));"""
IMAGE_STATE = """return Array.from(document.images).map(i => ({
  src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth}));"""


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)   # SEVERE console messages
    audio: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    title: str = ""

    def bad_audio(self) -> list[dict]:
        return [a for a in self.audio if a["error"] is not None or a["ready"] < 1
                or not (a["duration"] or 0) > 0]

    def bad_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["width"] <= 0]


def start_browser(profile_dir: str):
    """A headless Chromium session with a fresh profile; the caller quits it."""
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no telemetry, no downloads
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def inspect_page(driver, url: str, timeout: float = 20.0) -> PageCheck:
    """Load `url`, wait until every audio element has metadata (or failed) and every image settled."""
    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(url)
    deadline = time.monotonic() + timeout
    while True:
        check = PageCheck(audio=driver.execute_script(AUDIO_STATE), images=driver.execute_script(IMAGE_STATE))
        audio_settled = all(a["error"] is not None or a["ready"] >= 1 for a in check.audio)
        images_settled = all(i["complete"] for i in check.images)
        if (audio_settled and images_settled) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check.title = driver.title
    check.errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return check
