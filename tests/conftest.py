"""Shared fixtures: a tiny config, the installed wheel, a GCS server on loopback, and the environment every
test runs in."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent (only developers' machines have it)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_config():
    """A config small enough that training steps and separation take well under a second."""
    from model.config import Config

    return Config().replace(
        network__filters=(4, 8, 16), network__patch_frames=32, network__dropout=0.0,
        data__patch_seconds=2.0, training__batch_size=2, training__epochs=1, training__steps_per_epoch=2)


@dataclass(frozen=True)
class InstalledWheel:
    """The project's wheel installed in a venv of its own, used from a folder outside the checkout."""

    wheel: Path  # as built from setup.py, the file the image receives
    venv: Path
    workdir: Path  # an empty folder outside the checkout: run commands here

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The venv's bin first on PATH (Beam's worker pool starts `python` from PATH), no PYTHONPATH."""
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        return {**env, "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}", **extra}

    def run(self, *command: str, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=self.workdir, env=self.env(**extra_env), capture_output=True,
                              text=True, timeout=timeout)


def build_wheel(root: Path) -> Path:
    """`make wheel`'s build, from a copy of the files git knows (tracked, or new and not ignored), so that
    nothing left in the checkout (build/, caches, local outputs) can reach the wheel."""
    source = root / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    [wheel] = (root / "dist").glob("audio_track_separator-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    """The wheel installed (no editable finder, no checkout on the path) into a fresh venv whose third-party
    packages come from this test venv's site-packages, read through a .pth line (so that folder's own
    .pth files, the editable install's among them, are not run). Installing the pins anew would take
    minutes and 3 GB; `pip check` below proves the wheel's requirements are met all the same."""
    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(root)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-compile", str(wheel)], check=True, capture_output=True, timeout=300)
    checked = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "check"],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    workdir = root / "elsewhere"
    workdir.mkdir()
    return InstalledWheel(wheel, venv, workdir)


@pytest.fixture(scope="module")
def gcs_bucket():
    """A real GCS JSON-API server (gcp-storage-emulator) on loopback with an empty bucket; yields gs://bucket.

    Beam's GCS IO and gcsfs (common/storage.py) reach it through STORAGE_EMULATOR_HOST."""
    from apache_beam.internal.gcp import auth
    from gcp_storage_emulator.server import create_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="bucket")
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        for name, value in (("NO_GCE_CHECK", "true"), ("GCE_METADATA_HOST", "127.0.0.1:9"),
                            ("GCE_METADATA_IP", "127.0.0.1:9")):
            patch.setenv(name, value)
        # no credentials exist here: skip Beam's ~20 s of lookups and connect anonymously
        patch.setattr(auth._Credentials, "_credentials_init", True)
        patch.setattr(auth._Credentials, "_credentials", None)
        yield "gs://bucket"
    server.stop()
