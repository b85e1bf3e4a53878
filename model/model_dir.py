"""Checks an exported model folder before anything in it is loaded, and refuses foreign ones.

A model folder holds data only: `config.json` (read as JSON), `saved_model/` (a TensorFlow graph and
its variables, loaded with `tf.saved_model.load`, which runs no Python from the folder), and a few
documents (VERSION, MODEL_CARD.md, history.csv, training_curves.png, ...). Code, pickles and other
serialised Python objects have no business there: a folder holding any is refused, as is one that is
missing a part or whose config does not parse, each with a message that says what is wrong.

A graph is code of another kind: TensorFlow ops can read and write files, run Python (`PyFunc`) or reach
the network. `check_graph` reads saved_model.pb as data and refuses any op outside what the network's
own export uses (`NETWORK_OPS`); the checkpoint ops (`SAVER_OPS`) are allowed only in the saver's own
functions, and those may not be called from anything else. `Separator.load` runs it before TensorFlow
loads the graph, so separate, evaluate and the retrain gate all go through it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from model.config import CONFIG_FILE, Config

EXPORT_DIR = "saved_model"
# The model shipped inside the package (package data of the wheel): what `--model_dir` means when not given.
BUNDLED_MODEL_DIR = str(Path(__file__).resolve().with_name("bundled"))
GRAPH_FILE = "saved_model.pb"
# Files that would run code or unpickle objects if any tool were careless enough to load them.
CODE_SUFFIXES = {".py", ".pyc", ".pyo", ".pyw", ".pyz", ".pth", ".pkl", ".pickle", ".joblib", ".dill",
                 ".npy", ".npz", ".keras", ".h5", ".hdf5", ".pt", ".ckpt", ".so", ".dll", ".dylib", ".sh",
                 ".ipynb", ".whl", ".egg", ".zip"}
DOCUMENT_SUFFIXES = {".json", ".md", ".csv", ".png", ".txt", ".html", ".svg"}
DOCUMENT_NAMES = {"VERSION", "LICENSE", "README"}
GRAPH_PARTS = {GRAPH_FILE, "fingerprint.pb", "keras_metadata.pb"}
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; anything bigger is not one
# Every op of model.export's SavedModel of the U-Net (any config), read off its saved_model.pb: math on
# tensors, variables, function calls. Nothing here touches files, processes or the network.
NETWORK_OPS = frozenset({
    "AddV2", "AssignVariableOp", "BiasAdd", "Cast", "ConcatV2", "Const", "Conv2D", "Conv2DBackpropInput",
    "DisableCopyOnRead", "Identity", "LeakyRelu", "Mul", "NoOp", "Pack", "PartitionedCall", "Placeholder",
    "ReadVariableOp", "Relu",
    "Reshape", "Rsqrt", "Select", "Shape", "Softmax", "Squeeze", "StatefulPartitionedCall", "StridedSlice", "Sub",
    "VarHandleOp", "VarIsInitializedOp"})
# The checkpoint's save and restore (they read and write files): only inside the saver's own functions.
SAVER_OPS = frozenset({"MergeV2Checkpoints", "RestoreV2", "SaveV2", "ShardedFilename", "StaticRegexFullMatch",
                       "StringJoin"})
SAVER_FUNCTION = re.compile(r"^__inference__traced_(save|restore)_\d+$")


class ModelDirError(ValueError):
    """A folder that is not a usable exported model; the message says what is wrong."""


def check_model_dir(path: str | Path) -> Config:
    """Return the folder's Config if it is a well-formed exported model; ModelDirError otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"{folder} is not a folder (an exported model is config.json + {EXPORT_DIR}/)")
    missing = [name for name in (CONFIG_FILE, f"{EXPORT_DIR}/{GRAPH_FILE}") if not (folder / name).is_file()]
    if missing:
        raise ModelDirError(f"{folder} is not an exported model: missing {', '.join(missing)}")
    foreign = foreign_files(folder)
    if foreign:
        raise ModelDirError(f"{folder} holds files a model folder never has, refusing to load it: "
                            f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}")
    return read_config(folder / CONFIG_FILE)


def read_config(path: Path) -> Config:
    """Parse config.json strictly: valid JSON, an object, known keys, values of the right types."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelDirError(f"{path} is {path.stat().st_size} bytes: not a model config")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, dict) or not all(isinstance(value, dict) for value in raw.values()):
        raise ModelDirError(f"{path} must hold a JSON object of config sections")
    try:
        config = Config.from_dict(raw)
    except (ValueError, TypeError) as error:
        raise ModelDirError(f"{path} is not a model config: {error}") from None
    if not config.network.heads or config.audio.sample_rate <= 0 or config.audio.channels <= 0:
        raise ModelDirError(f"{path} names no heads, or a sample rate or channel count below 1")
    return config


def foreign_files(folder: Path) -> list[str]:
    """Paths (relative to the folder) that have no place in a model folder, with why."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found.append(f"{relative} (a symbolic link)")
        elif path.is_dir():
            continue
        elif path.suffix.lower() in CODE_SUFFIXES:
            found.append(f"{relative} (code or a serialised Python object)")
        elif not _expected(relative):
            found.append(f"{relative} (unexpected file)")
    return found


def _expected(relative: str) -> bool:
    parts = relative.split("/")
    if parts[0] != EXPORT_DIR:
        return parts[-1] in DOCUMENT_NAMES or Path(parts[-1]).suffix.lower() in DOCUMENT_SUFFIXES
    inner = parts[1:]
    if len(inner) == 1:
        return inner[0] in GRAPH_PARTS
    if inner[0] == "variables" and len(inner) == 2:
        return inner[1] == "variables.index" or inner[1].startswith("variables.data-")
    return inner[0] == "assets"  # graph assets (vocabularies, ...) are read by TF ops as data


def check_graph(folder: str | Path) -> None:
    """Refuse (ModelDirError) a saved_model.pb whose graph uses an op the network never needs, or calls
    the saver's file-writing functions from anywhere but the saver. Reads the graph as data only."""
    from tensorflow.core.protobuf import saved_model_pb2  # protobuf classes: nothing is executed

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(folder) / EXPORT_DIR / GRAPH_FILE).read_bytes())
    refused = set()
    for meta_graph in saved.meta_graphs:
        graph = meta_graph.graph_def
        saver = {f.signature.name for f in graph.library.function if SAVER_FUNCTION.match(f.signature.name)}
        refused |= {f"{node.op} (graph node {node.name})" for node in graph.node
                    if node.op not in NETWORK_OPS | SAVER_OPS}
        for function in graph.library.function:
            name = function.signature.name
            allowed = NETWORK_OPS | SAVER_OPS if name in saver else NETWORK_OPS
            for node in function.node_def:
                if node.op not in allowed:
                    refused.add(f"{node.op} (in {name})")
                if name not in saver:
                    refused |= {f"a call of the saver's {callee} (in {name})" for callee in _callees(node)
                                if callee in saver}
    if refused:
        listed = sorted(refused)
        raise ModelDirError(f"{folder}: its graph uses operations a separation model never needs, refusing to "
                            f"run it: {', '.join(listed[:5])}{' ...' if len(listed) > 5 else ''}")


def _callees(node) -> set[str]:
    """The functions a node calls through its attributes (PartitionedCall's f, If/While branches, ...)."""
    called = set()
    for value in node.attr.values():
        if value.HasField("func"):
            called.add(value.func.name)
        if value.HasField("list"):
            called |= {func.name for func in value.list.func}
    return called
