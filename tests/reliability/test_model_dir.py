"""Model folders: a corrupt or foreign one is refused with a clear error, and nothing in it ever runs."""
from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.model_dir import ModelDirError, check_model_dir
from tests.conftest import REPO

MARKER_CODE = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"


class _Planted:
    """Unpickling this writes the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_the_exported_model_passes(model_dir, tiny_config, record_case):
    config = check_model_dir(model_dir)
    record_case("model folder", "exported by model.export", "accepted",
                f"accepted: heads {list(config.network.heads)}, filters {list(config.network.filters)}")
    assert config == tiny_config


@pytest.mark.parametrize("damage, message", [
    ("no config", "missing config.json"),
    ("no graph", "missing saved_model/saved_model.pb"),
    ("config not json", "is not valid JSON"),
    ("config unknown key", "unknown NetworkConfig keys: ['lambda_layer']"),
    ("config wrong type", "is not a model config"),
    ("config a list", "must hold a JSON object"),
    ("python file", "extra.py (code or a serialised Python object)"),
    ("pickle", "weights.pkl (code or a serialised Python object)"),
    ("keras file", "model.keras (code or a serialised Python object)"),
    ("symlink", "a symbolic link"),
    ("stray file", "saved_model/custom_op.bin (unexpected file)"),
    ("not a folder", "is not a folder"),
])
def test_damaged_or_foreign_folders_are_refused(model_dir, tmp_path, damage, message, record_case):
    folder = _copy(model_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    if damage == "no config":
        (folder / "config.json").unlink()
    elif damage == "no graph":
        (folder / "saved_model" / "saved_model.pb").unlink()
    elif damage == "config not json":
        (folder / "config.json").write_text("{'audio': ")
    elif damage == "config unknown key":
        config["network"]["lambda_layer"] = "lambda x: __import__('os').system('id')"
        (folder / "config.json").write_text(json.dumps(config))
    elif damage == "config wrong type":
        config["audio"]["sample_rate"] = "fast"
        (folder / "config.json").write_text(json.dumps(config))
    elif damage == "config a list":
        (folder / "config.json").write_text("[1, 2]")
    elif damage == "python file":
        (folder / "extra.py").write_text("print('hello')\n")
    elif damage == "pickle":
        (folder / "weights.pkl").write_bytes(pickle.dumps([1, 2]))
    elif damage == "keras file":
        (folder / "model.keras").write_bytes(b"PK\x03\x04")
    elif damage == "symlink":
        (folder / "notes.md").symlink_to("/etc/passwd")
    elif damage == "stray file":
        (folder / "saved_model" / "custom_op.bin").write_bytes(b"\0")
    elif damage == "not a folder":
        folder = folder / "config.json"
    with pytest.raises(ModelDirError) as refused:
        check_model_dir(folder)
    record_case("model folder", damage, "refused", f"refused: {refused.value}")
    assert message in str(refused.value)


def test_planted_code_and_pickles_never_run(model_dir, tmp_path, record_case):
    """A folder with a .py, a sitecustomize.py, an __init__.py and a pickle that would each write a
    marker if executed: Separator.load refuses it, and loading the graph alone runs none of them."""
    folder = _copy(model_dir, tmp_path)
    markers = {name: tmp_path / f"ran-{name}" for name in ("module", "site", "init", "pickle")}
    (folder / "custom_layers.py").write_text(MARKER_CODE.format(marker=str(markers["module"])))
    (folder / "sitecustomize.py").write_text(MARKER_CODE.format(marker=str(markers["site"])))
    (folder / "saved_model" / "__init__.py").write_text(MARKER_CODE.format(marker=str(markers["init"])))
    (folder / "saved_model" / "variables" / "extra.pkl").write_bytes(pickle.dumps(_Planted(str(markers["pickle"]))))
    code = (
        "import sys, tensorflow as tf\n"
        "from model.model_dir import ModelDirError\n"
        "from model.separator import Separator\n"
        "try:\n"
        f"    Separator.load({str(folder)!r})\n"
        "    sys.exit('loaded a folder with code in it')\n"
        "except ModelDirError as error:\n"
        "    print('refused:', error)\n"
        f"tf.saved_model.load({str(folder / 'saved_model')!r})  # the graph alone, past the check\n"
        "print('graph loaded')\n")
    env = {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)
    ran = [name for name, marker in markers.items() if marker.exists()]
    refusal = next((line for line in done.stdout.splitlines() if line.startswith("refused:")), "not refused")
    record_case("model folder", ".py, sitecustomize.py, __init__.py, pickle planted", "refused, nothing runs",
                f"markers written: {ran or 'none'}; {refusal}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "custom_layers.py" in refusal and "graph loaded" in done.stdout
    assert ran == []


def _planted_graph(model_dir: Path, folder: Path, action: str, marker: Path) -> Path:
    """A model folder with the real config, VERSION and file names whose serving graph also acts: writes
    `marker`, reads /etc/hostname, or runs Python. Only its graph differs from an honest export."""
    import tensorflow as tf

    heads = json.loads((model_dir / "config.json").read_text())["network"]["heads"]

    class Planted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32, name="magnitude")])
        def serve(self, magnitude):
            # besides the one op that acts, only ops the network itself uses (Mul, AddV2, Const, Identity)
            if action == "write":
                tf.io.write_file(str(marker), "ran")
            elif action == "read":
                with tf.control_dependencies([tf.io.read_file("/etc/hostname")]):
                    magnitude = tf.identity(magnitude)
            else:
                magnitude = tf.py_function(lambda m: m, [magnitude], tf.float32)
            return {head: magnitude * 0.0 + 1.0 / len(heads) for head in heads}

    folder.mkdir()
    for name in ("config.json", "VERSION"):
        shutil.copy(model_dir / name, folder / name)
    planted = Planted()
    tf.saved_model.save(planted, str(folder / "saved_model"), signatures={"serving_default": planted.serve})
    return folder


@pytest.mark.parametrize("action, op", [("write", "WriteFile"), ("read", "ReadFile"), ("python", "EagerPyFunc")])
def test_graphs_that_act_are_refused_before_they_run(model_dir, tmp_path, action, op, record_case):
    import tensorflow as tf

    from model.separator import Separator

    marker = tmp_path / "marker.txt"
    folder = _planted_graph(model_dir, tmp_path / "planted", action, marker)
    check_model_dir(folder)  # the folder itself looks like a model: only its graph gives it away
    with pytest.raises(ModelDirError) as refused:
        Separator.load(folder)
    written_before = marker.exists()
    named = re.search(r"refusing to run it: (.*)$", str(refused.value))
    what = {"write": "writes a file", "read": "reads /etc/hostname", "python": "runs Python"}[action]
    record_case("model folder", f"serving graph that {what}", "refused before it runs",
                f"refused, naming {named.group(1) if named else str(refused.value)}; file written: {written_before}")
    assert re.search(rf"never needs, refusing to run it: {op} \(in __inference_serve_\d+\)$", str(refused.value))
    assert not written_before
    if action == "write":  # the graph is live: loaded without the check, it writes the file
        tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"](
            magnitude=tf.zeros([1, 4, 4, 2]))
        assert marker.read_text() == "ran"
    Separator.load(model_dir)  # an honest export passes the same check


def test_a_graph_that_calls_the_savers_file_writing_function_is_refused(model_dir, tmp_path):
    """SaveV2 is allowed in the saver's own function only: a serving function that calls it is refused."""
    from tensorflow.core.protobuf import saved_model_pb2

    from model.model_dir import SAVER_FUNCTION, check_graph

    folder = _copy(model_dir, tmp_path)
    graph_file = folder / "saved_model" / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(graph_file.read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    save = next(f.signature.name for f in library if SAVER_FUNCTION.match(f.signature.name) and "save" in f.signature.name)
    serving = next(f for f in library if not SAVER_FUNCTION.match(f.signature.name))
    call = serving.node_def.add(name="sneaky", op="StatefulPartitionedCall")
    call.attr["f"].func.name = save
    graph_file.write_bytes(saved.SerializeToString())
    with pytest.raises(ModelDirError, match=f"a call of the saver's {save}"):
        check_graph(folder)
    check_graph(model_dir)
