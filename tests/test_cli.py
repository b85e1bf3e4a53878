"""The command surface: `atsep` and the seed's `main.py` answer --help without importing TensorFlow."""
from __future__ import annotations

import os
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


def test_the_command_exits_with_its_code_and_without_a_last_full_collection():
    """`atsep` (the console script and `python -m atsep`) freezes the heap before exiting, so the interpreter's
    last garbage collection skips what TensorFlow and Beam left behind; its exit status is main's."""
    code = ("import gc, sys\n"
            "from atsep.cli import run\n"
            "sys.argv = ['atsep', 'separat']\n"
            "try:\n"
            "    run()\n"
            "except SystemExit as exit:\n"
            "    print(exit.code, gc.get_freeze_count() > 0)\n")
    result = _python(code)
    assert result.stdout.split() == ["2", "True"], result.stderr


def test_start_up_imports_are_frozen_and_the_run_collects_garbage(monkeypatch):
    """The subcommand's imports happen with the collector off and are frozen after; the subcommand itself
    runs with the collector on (a catalogue run must not keep its garbage)."""
    import gc
    import types

    from atsep import cli

    seen = {}
    probe = types.ModuleType("atsep_probe")

    def probe_main(argv):
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count(), argv=argv)
        return 0

    probe.main = probe_main
    monkeypatch.setitem(sys.modules, "atsep_probe", probe)
    monkeypatch.setitem(cli.SUBCOMMANDS, "probe", ("atsep_probe", "a test's subcommand"))
    try:
        assert cli.main(["probe", "--verbose", "x"]) == 0
    finally:
        gc.unfreeze()
    assert seen == {"enabled": True, "frozen": seen["frozen"], "argv": ["x"]} and seen["frozen"] > 0


def test_unknown_subcommand_is_refused_with_usage():
    from atsep.cli import main

    assert main(["separat"]) == 2


def test_the_terminal_shows_our_messages_and_tensorflows_only_when_verbose(tmp_path):
    """A user's shell sets no TF_* variables: TensorFlow's C++ start-up lines and third-party warnings are
    held back; `--verbose` lets them through (so the quiet run really hid something)."""
    import numpy as np
    import soundfile as sf

    from atsep.cli import NATIVE_START_UP

    sf.write(tmp_path / "song.wav", (0.2 * np.random.default_rng(0).standard_normal((22050, 2))).astype("float32"),
             22050)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    env["PYTHONPATH"] = str(REPO)

    def separate(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "atsep", "separate", "song.wav", "-o", "out", "--force", *extra],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    quiet = separate()
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert [line for line in quiet.stderr.splitlines() if NATIVE_START_UP.match(line) or "Warning" in line] == []
    assert "separate: 1 separated" in quiet.stdout
    verbose = separate("--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert any(NATIVE_START_UP.match(line) for line in verbose.stderr.splitlines()), verbose.stderr[-2000:]
