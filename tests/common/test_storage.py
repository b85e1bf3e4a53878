"""common.storage: the same calls on a local folder and on a gs:// bucket (a GCS server on loopback)."""
from __future__ import annotations

import os

import pytest

from common import storage


@pytest.fixture(params=["local", pytest.param("gs", marks=pytest.mark.gcs)])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("gcs_bucket") + "/" + request.node.name.replace("[", "-").rstrip("]")


def test_write_read_list_remove(root):
    storage.write_text_atomic(storage.join(root, "a", "b.txt"), "hello\n")
    storage.write_bytes_atomic(storage.join(root, "a", "c.bin"), b"\x00\x01")
    with storage.open_file(storage.join(root, "d.csv"), "w") as out:
        out.write("epoch\n1\n")
    assert storage.read_text(storage.join(root, "a/b.txt")) == "hello\n"
    assert storage.read_bytes(storage.join(root, "a", "c.bin")) == b"\x00\x01"
    with storage.open_file(storage.join(root, "d.csv")) as source:
        assert source.read() == "epoch\n1\n"
    assert storage.list_dir(root) == ["a", "d.csv"]
    assert storage.list_dir(storage.join(root, "missing")) == []
    files = storage.list_files(root)
    assert [path[len(storage.absolute(root)) + 1:] for path in files] == ["a/b.txt", "a/c.bin", "d.csv"]
    storage.remove(storage.join(root, "d.csv"))
    storage.remove(storage.join(root, "d.csv"))  # absent: nothing happens
    assert not storage.exists(storage.join(root, "d.csv"))


def test_copy_and_stage_a_tree(root, tmp_path):
    storage.write_text_atomic(storage.join(root, "model", "config.json"), "{}")
    storage.write_text_atomic(storage.join(root, "model", "saved_model", "saved_model.pb"), "graph")
    storage.copy_tree(storage.join(root, "model"), storage.join(root, "copy"))
    assert storage.read_text(storage.join(root, "copy", "saved_model", "saved_model.pb")) == "graph"
    local = storage.stage_tree(storage.join(root, "model"))
    assert open(os.path.join(local, "saved_model", "saved_model.pb")).read() == "graph"


def test_local_writes_leave_no_partial_files_and_readable_pages(tmp_path):
    page = tmp_path / "out" / "index.html"
    storage.write_text_atomic(str(page), "<p>ok</p>")
    assert os.listdir(page.parent) == ["index.html"]
    assert page.stat().st_mode & 0o644 == 0o644


def test_join_and_absolute():
    assert storage.join("gs://bucket/dir/", "a", "b.txt") == "gs://bucket/dir/a/b.txt"
    assert storage.absolute("gs://bucket/x") == "gs://bucket/x"
    assert storage.absolute("rel") == os.path.abspath("rel")
