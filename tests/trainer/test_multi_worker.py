"""`--strategy multi_worker` for real: two trainer processes on 127.0.0.1 ports, one TF_CONFIG cluster.

About 70 s on the 2-core development machine under load (two TensorFlow processes, collective ops over
loopback), so it runs when TRAINER_MULTI_WORKER=1 is set:

    TRAINER_MULTI_WORKER=1 .venv/bin/python -m pytest tests/trainer/test_multi_worker.py -q
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.trainer.records import write_dataset

pytestmark = pytest.mark.skipif(not os.environ.get("TRAINER_MULTI_WORKER"),
                                reason="~70 s, two TensorFlow processes: set TRAINER_MULTI_WORKER=1")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_in_step_and_only_the_chief_exports(tmp_path, tiny_config):
    from model.separator import Separator
    from reports.training import HISTORY_FILE
    from trainer.history import read_history

    tiny_config.save(tmp_path)
    write_dataset(tmp_path / "data", tiny_config, {"train": 6, "valid": 2})
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    argv = ["--data", str(tmp_path / "data"), "--model_dir", str(tmp_path / "model"),
            "--config", str(tmp_path / "config.json"), "--strategy", "multi_worker"]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, "-m", "trainer.task", *argv], cwd=REPO, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [worker.communicate(timeout=400)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)

    assert all("training: 2 replica(s)" in log for log in logs)
    # the same synchronised step on both: identical losses and (averaged) validation SDR in their logs
    epochs = [re.search(r"\d+/\d+ - .*loss: .*val_sdr: \S+", log).group(0) for log in logs]
    figures = [re.findall(r"(\w+): (-?[\d.]+(?:e[-+]\d+)?)", line) for line in epochs]
    assert dict(figures[0]) | {"epoch_s": ""} == dict(figures[1]) | {"epoch_s": ""}
    assert "exported epoch 1 of 1" in logs[0] and "exported" not in logs[1]  # worker 0 is the chief
    assert len(read_history(str(tmp_path / "model" / HISTORY_FILE))) == 1
    assert Separator.load(tmp_path / "model").stem_names == ("vocals", "drums", "residual")
