"""Imports point downward (docs/architecture.md): each package may import only the packages listed for it, and
model/ and audio/ stay free of pipelines, command lines, cloud SDKs and plotting.

Every import statement counts, including those inside functions (imported lazily is still a dependency).
The check runs over the checkout and, to show it can fail, over small trees with planted violations.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# package -> the project's packages it may import (besides itself); a package missing here imports none
ALLOWED = {
    "common": set(),  # progress bars, storage: the ground floor
    "model": {"common"},
    "audio": {"common", "model"},  # model/config.py: the stem vocabulary (mixture, stem names); never the reverse
    "reports": {"common"},
    "beam_jobs": {"common", "audio", "model", "reports"},  # never trainer
    "trainer": {"common", "audio", "model", "reports"},  # never beam_jobs
    "atsep": {"common", "audio", "model", "reports", "beam_jobs", "trainer"},  # imported by no package below
    "infra": {"common", "audio", "model", "reports", "beam_jobs", "trainer", "atsep"},  # deployment wrappers
}
# third-party modules a package must not import: the network and the audio I/O stay plain libraries
FORBIDDEN = {
    "model": {"apache_beam", "argparse", "google", "googleapiclient", "gcsfs", "fsspec", "kfp", "matplotlib"},
    "audio": {"apache_beam", "argparse", "google", "googleapiclient", "gcsfs", "fsspec", "kfp", "matplotlib",
              "tensorflow", "keras"},
}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module an absolute import in `source` names."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(root: Path) -> list[str]:
    """'file: imports X' for every import that breaks ALLOWED or FORBIDDEN under `root`."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for name in sorted(imported_modules(path.read_text(encoding="utf-8"))):
                above = name in ALLOWED and name != package and name not in allowed
                if above or name in FORBIDDEN.get(package, ()):
                    found.append(f"{path.relative_to(root)}: imports {name}")
    return found


def test_the_checkout_imports_only_downward():
    assert violations(REPO) == []


def test_relative_imports_are_not_used():
    """A relative import would hide its package from the check above."""
    relative = [str(path.relative_to(REPO)) for package in ALLOWED for path in (REPO / package).rglob("*.py")
                if any(isinstance(node, ast.ImportFrom) and node.level
                       for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert relative == []


@pytest.mark.parametrize("file, source, expected", [
    ("model/unet.py", "import apache_beam as beam\n", "model/unet.py: imports apache_beam"),
    ("model/unet.py", "def f():\n    from matplotlib import pyplot\n", "model/unet.py: imports matplotlib"),
    ("model/unet.py", "from audio.codec import decode\n", "model/unet.py: imports audio"),
    ("audio/codec.py", "import tensorflow as tf\n", "audio/codec.py: imports tensorflow"),
    ("common/progress.py", "from atsep import cli\n", "common/progress.py: imports atsep"),
    ("beam_jobs/separate.py", "from trainer import paths\n", "beam_jobs/separate.py: imports trainer"),
    ("trainer/task.py", "import beam_jobs.storage\n", "trainer/task.py: imports beam_jobs"),
    ("reports/html.py", "from beam_jobs import storage\n", "reports/html.py: imports beam_jobs"),
])
def test_a_planted_upward_import_is_found(tmp_path, file, source, expected):
    (tmp_path / file).parent.mkdir(parents=True)
    (tmp_path / file).write_text(source)
    (tmp_path / "atsep").mkdir()
    (tmp_path / "atsep" / "cli.py").write_text("from model import unet\nfrom beam_jobs import separate\n")
    assert violations(tmp_path) == [expected]
