"""The worker image's content: what the build context sends, installed as the Dockerfile installs it, and
every cloud entry point imported from that install, in a folder outside the checkout (no Docker engine
runs here, so the image's own steps are replayed on the installed wheel)."""
from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO

DOCKERFILE = REPO / "infra" / "Dockerfile"
# what the cloud runs: the Flex Template launchers' entry files, the Vertex trainer, the retrain steps
ENTRY_POINTS = ("infra.flex.separate_main", "infra.flex.preprocess_main", "beam_jobs.separate",
                "beam_jobs.preprocess", "trainer.task", "trainer.evaluate", "trainer.publish", "atsep.retrain",
                "atsep.cli", "reports.cli")
COMMANDS = (("python", "-m", "trainer.task", "--help"), ("python", "-m", "trainer.evaluate", "--help"),
            ("python", "-m", "atsep.retrain", "--help"), ("atsep", "separate", "--help"),
            ("atsep", "preprocess", "--help"))


def _stage(name: str) -> list[str]:
    """The instructions of one Dockerfile stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    start = next(n for n, line in enumerate(lines) if line.startswith("FROM ") and line.endswith(f" AS {name}"))
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("FROM ")), len(lines))
    return lines[start + 1:end]


def _context() -> set[str]:
    """The files .dockerignore lets into the build context: it must exclude all (`*`) and name each file."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*" and all(line.startswith("!") and "*" not in line for line in lines[1:]), lines
    return {line[1:] for line in lines[1:]}


def test_the_image_receives_only_the_wheel_and_the_lock(installed_wheel):
    context = _context()
    assert context == {"requirements.lock", f"dist/{installed_wheel.wheel.name}"}  # the name setup.py gives
    copies = [shlex.split(line)[1:] for stage in ("worker", "worker-gpu") for line in _stage(stage)
              if line.startswith("COPY ") and "--from=" not in line]
    assert copies and all(set(sources[:-1]) <= context for sources in copies), copies
    [install] = [line for line in _stage("worker") if line.startswith("RUN pip install")]
    assert f"-c /tmp/atsep/requirements.lock /tmp/atsep/{installed_wheel.wheel.name}" in install
    assert "pip check" in install and "--no-deps" not in install


def test_the_worker_image_installs_the_system_packages_the_jobs_use():
    from beam_jobs import plots

    [install] = [line for line in _stage("worker") if line.startswith("RUN apt-get")]
    assert {"ffmpeg", plots.CJK_FONT_PACKAGE} <= set(shlex.split(install)), install


def test_the_wheel_carries_every_package_and_the_bundled_model(installed_wheel):
    import zipfile

    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    for package in ("atsep", "model", "beam_jobs", "trainer", "reports", "infra", "infra/flex", "infra/pipelines"):
        assert f"{package}/__init__.py" in names, package
    bundled = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "model" / "bundled").rglob("*")
                     if path.is_file())
    assert bundled and set(bundled) <= names


def test_every_cloud_entry_point_imports_from_the_install(installed_wheel):
    code = ("import importlib, json, sys\n"
            f"mods = {list(ENTRY_POINTS)!r}\n"
            "print(json.dumps({name: importlib.import_module(name).__file__ for name in mods}))")
    done = installed_wheel.run("python", "-c", code, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    files = json.loads(done.stdout.strip().splitlines()[-1])
    site = str(installed_wheel.venv)
    assert all(path.startswith(site) for path in files.values()), files
    flex = [line for stage in ("preprocess-template", "separate-template") for line in _stage(stage)]
    for line in flex:  # ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/atsep/flex/<job>_main.py -> installed infra/flex
        entry = line.split("=", 1)[1].rsplit("/", 1)[1]
        assert any(path.endswith(f"/infra/flex/{entry}") for path in files.values()), (line, files)
    for command in COMMANDS:
        done = installed_wheel.run(*command, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, (command, done.stderr[-2000:])


def test_the_bundled_model_separates_from_any_folder(installed_wheel):
    """`atsep separate SONG -o OUT` with no --model_dir, run where no model folder is in sight."""
    rate = 22050
    t = np.arange(2 * rate) / rate
    song = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(installed_wheel.workdir / "song.wav", song.astype(np.float32), rate)
    done = installed_wheel.run("atsep", "separate", "song.wav", "-o", "out", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((installed_wheel.workdir / "out" / "song" / "track.json").read_text())
    assert record["status"] == "ok"
    assert record["model_version"] == (REPO / "model" / "bundled" / "VERSION").read_text().strip()
    for stem in record["stems"]:
        assert sf.info(installed_wheel.workdir / "out" / "song" / f"{stem}.wav").frames == len(song)


@pytest.mark.parametrize("stage", ["worker", "worker-gpu", "preprocess-template", "separate-template"])
def test_no_stage_reads_the_checkout(stage):
    """Nothing but the wheel carries the project: no PYTHONPATH, no folder copied from the context."""
    assert not [line for line in _stage(stage) if "PYTHONPATH" in line or line.startswith("ADD ")]
