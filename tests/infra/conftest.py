"""Fixtures for infra tests: nothing may reach Google, and Beam must not look for credentials."""
from __future__ import annotations

import pytest

OFFLINE_ENV = {"NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
               "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}  # any stray GCS call fails fast on loopback


@pytest.fixture
def offline_gcp(monkeypatch):
    """No metadata server, no credentials lookup (Beam's ~20 s of retries), GCS pointed at a dead port."""
    from apache_beam.internal.gcp import auth

    from beam_jobs import storage

    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    # the jobs probe their output folder before building a graph; offline there is no bucket to write to
    # (the probe itself is tested in tests/reliability)
    monkeypatch.setattr(storage, "check_writable", lambda folder: None)
