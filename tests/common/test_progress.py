"""Progress bars: drawn on a terminal, silent when stderr is a pipe or a file."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.conftest import REPO

SCRIPT = ("from common.progress import progress\n"
          "total = sum(progress(range(50), desc='work', unit='track'))\n"
          "with progress(total=3, desc='manual') as bar:\n"
          "    bar.update(3)\n"
          "print(total)\n")


def _env(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "ATSEP_PROGRESS"}
    return {**environment, "PYTHONPATH": str(REPO), **extra}


def _run_on_pipe(**env: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=_env(**env),
                          timeout=60, check=True)
    return done.stdout, done.stderr


def _run_on_terminal(rows: int, columns: int, **env: str) -> str:
    """What SCRIPT draws on a pseudo-terminal of the given size as its stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        subprocess.run([sys.executable, "-c", SCRIPT], stdout=subprocess.DEVNULL, stderr=follower,
                       env=_env(**env), timeout=60, check=True)
    finally:
        os.close(follower)
    chunks = []
    try:
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the other end is closed and everything was read
        pass
    finally:
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_silent_when_stderr_is_not_a_terminal():
    stdout, stderr = _run_on_pipe()
    assert stdout.strip() == str(sum(range(50))) and stderr == ""


@pytest.mark.parametrize("rows, columns", [(30, 100), (0, 0)])  # 0 x 0: what some CI terminals report
def test_bar_on_a_terminal(rows, columns):
    drawn = _run_on_terminal(rows, columns)
    assert "work: 100%" in drawn and "50/50" in drawn and "manual: 100%" in drawn


def test_switch_overrides_the_terminal_check():
    assert _run_on_terminal(30, 100, ATSEP_PROGRESS="0") == ""
    assert "work: 100%" in _run_on_pipe(ATSEP_PROGRESS="1")[1]
