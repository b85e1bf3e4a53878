"""Fixtures for the Beam jobs: a real GCS server on loopback."""
from __future__ import annotations

import logging
import socket

import pytest


@pytest.fixture(scope="module")
def gcs_bucket():
    """A real GCS JSON-API server (gcp-storage-emulator) on loopback with an empty bucket; yields gs://bucket.

    Beam's GCS IO reaches it through STORAGE_EMULATOR_HOST."""
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
