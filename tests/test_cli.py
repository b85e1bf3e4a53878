"""The command surface: `atsep` and the seed's `main.py` answer --help without importing TensorFlow."""
from __future__ import annotations

import subprocess
import sys

import pytest

from atsep.cli import SUBCOMMANDS
from tests.conftest import REPO

HELP_WITHOUT_TF = """
import sys
from {module} import main
try:
    main({argv!r})
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = sorted(name for name in ("tensorflow", "keras") if name in sys.modules)
assert not heavy, f"--help imported {{heavy}}"
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("subcommand", sorted(SUBCOMMANDS))
def test_subcommand_help_does_not_import_tensorflow(subcommand):
    result = _python(HELP_WITHOUT_TF.format(module="atsep.cli", argv=[subcommand, "--help"]))
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_top_level_help_lists_every_subcommand():
    result = _python(HELP_WITHOUT_TF.format(module="atsep.cli", argv=["--help"]))
    assert result.returncode == 0, result.stderr
    for subcommand in SUBCOMMANDS:
        assert subcommand in result.stdout


def test_seed_main_help_does_not_import_tensorflow():
    result = _python(HELP_WITHOUT_TF.format(module="main", argv=["--help"]))
    assert result.returncode == 0, result.stderr
    assert "--model_save_path" in result.stdout


def test_unknown_subcommand_is_refused_with_usage():
    from atsep.cli import main

    assert main(["separat"]) == 2
