"""Fixtures for the reliability tests: a tiny exported model, the hostile corpus, object storage on
loopback behind a flaky proxy."""
from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path

import pytest

from tests.reliability.corpus import write_corpus
from tests.reliability.flaky_proxy import FlakyProxy


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_config) -> Path:
    from model.export import export_model
    from model.unet import build_unet

    return export_model(build_unet(tiny_config), tiny_config, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("hostile") / "songs"
    return folder, write_corpus(folder)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def flaky_bucket():
    """gs://bucket on a real GCS emulator, reached only through a proxy that fails every 4th request
    (503s and dropped connections in turn); yields (bucket url, proxy)."""
    from apache_beam.internal.gcp import auth
    from gcp_storage_emulator.server import create_server

    port = free_port()
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="bucket")
    server.start()
    with FlakyProxy(port, period=4) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        for name, value in (("NO_GCE_CHECK", "true"), ("GCE_METADATA_HOST", "127.0.0.1:9"),
                            ("GCE_METADATA_IP", "127.0.0.1:9")):
            patch.setenv(name, value)
        # no credentials exist here: skip Beam's ~20 s of lookups and connect anonymously
        patch.setattr(auth._Credentials, "_credentials_init", True)
        patch.setattr(auth._Credentials, "_credentials", None)
        yield "gs://bucket", proxy
    server.stop()


ROWS: list[tuple[str, str, str, str, str]] = []  # (area, case, expected, observed, verdict)
TABLE_ENV = "RELIABILITY_TABLE"  # where to write the table as markdown, besides the terminal


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "call":
        item.reliability_verdict = "as expected" if report.passed else "NOT as expected"


@pytest.fixture
def record_case(request):
    """record_case(area, case, expected, observed): a row of the printed table of cases and outcomes.

    `observed` is what the run did, taken from its outputs; call it before the assertions that judge it.
    The row's verdict is the test's own result, so a case that misbehaves shows in the table too."""
    rows = []

    def record(area: str, case: str, expected: str, observed: str) -> None:
        rows.append([re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/]+/", "", text).replace("|", "/").replace("\n", "\\n").replace("\t", "\\t")
                     for text in (area, case, expected, observed)])

    yield record
    verdict = getattr(request.node, "reliability_verdict", "error")
    ROWS.extend((area, case, expected, observed[:160], verdict) for area, case, expected, observed in rows)


def table() -> str:
    lines = ["| area | case | expected | observed | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in ROWS]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    wrong = sum(row[-1] != "as expected" for row in ROWS)
    terminalreporter.section(f"reliability: {len(ROWS)} cases, {wrong} not as expected")
    terminalreporter.write(table())
    if os.environ.get(TABLE_ENV):
        Path(os.environ[TABLE_ENV]).write_text(table())
