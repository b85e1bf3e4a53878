"""`atsep retrain`: the real local chain on tiny generated songs, and the promote gate's decisions."""
from __future__ import annotations

import json
import shutil

import pytest

from atsep import retrain, synth
from tests.beam_jobs.conftest import gcs_bucket  # noqa: F401 - the GCS server fixture, for gs:// registries

VALID = "Synth 002 - Seed 0"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One real run of the chain into an empty registry (v1: promoted), then v2, a copy of v1's model
    (a retrain that changed nothing), through the real evaluate and promote stages: equal is not better."""
    from model.config import Config

    root = tmp_path_factory.mktemp("retrain")
    synth.generate(root / "songs", count=3, seconds=2.5, test_count=0, sample_rate=11025)
    config = Config().replace(  # tests/conftest.py's tiny_config, one head (museval's cost grows with
        network__filters=(4, 8, 16), network__patch_frames=32, network__dropout=0.0,  # the stems cubed)
        network__heads=("vocals",), data__patch_seconds=2.0, data__validation_tracks=(VALID,),
        training__batch_size=2, training__epochs=1, training__steps_per_epoch=2)
    config.save(root)
    registry = root / "registry"
    assert retrain.main(["run", "--songs", str(root / "songs"), "--registry", str(registry),
                         "--work", str(root / "work"), "--config", str(root / "config.json"), "--version", "v1"]) == 0
    shutil.copytree(registry / "versions" / "v1" / "model", registry / "versions" / "v2" / "model")
    stage = ["--registry", str(registry), "--version", "v2"]
    assert retrain.main(["evaluate", *stage, "--songs", str(root / "songs"), "--split", "all",
                         "--tracks", VALID]) == 0
    assert retrain.main(["promote", *stage]) == 0
    return registry


def _json(path) -> dict:
    return json.loads(path.read_text())


def test_first_model_is_promoted_and_scored_on_the_validation_song(chain):
    assert (chain / "versions" / "v1" / "model" / "saved_model").is_dir()
    evaluation = _json(chain / "versions" / "v1" / "evaluation.json")
    assert evaluation["champion"] is None and evaluation["candidate"]["tracks"] == [VALID]
    assert set(evaluation["candidate"]["per_target"]) == {"vocals", "residual"}
    assert all(isinstance(sdr, float) for sdr in evaluation["candidate"]["per_target"].values())
    decision = _json(chain / "versions" / "v1" / "decision.json")
    assert decision["promoted"] and decision["reason"] == "no current model"


def test_an_equal_model_is_scored_beside_the_current_one_and_refused(chain):
    evaluation = _json(chain / "versions" / "v2" / "evaluation.json")
    # the current model is scored again beside the candidate, on the same songs: the same numbers
    first = _json(chain / "versions" / "v1" / "evaluation.json")["candidate"]["per_target"]
    assert evaluation["champion"]["version"] == "v1"
    assert evaluation["champion"]["per_target"] == pytest.approx(first, abs=1e-4)
    assert evaluation["candidate"]["per_target"] == pytest.approx(first, abs=1e-4)
    decision = _json(chain / "versions" / "v2" / "decision.json")
    assert not decision["promoted"] and decision["current_before"] == "v1"


def _inject(registry, version: str, delta_db: float) -> None:
    """The evaluate stage's output with the candidate `delta_db` away from the current model."""
    path = registry / "versions" / version / "evaluation.json"
    evaluation = _json(path)
    champion = evaluation["champion"]["per_target"]
    evaluation["candidate"]["per_target"] = {target: sdr + delta_db for target, sdr in champion.items()}
    path.write_text(json.dumps(evaluation))


def test_the_gate_refuses_a_worse_model_and_promotes_a_better_one(chain):
    assert (chain / "current").read_text().strip() == "v1"
    _inject(chain, "v2", -0.5)
    assert retrain.main(["promote", "--registry", str(chain), "--version", "v2"]) == 0
    assert (chain / "current").read_text().strip() == "v1"
    _inject(chain, "v2", +0.5)
    assert retrain.main(["promote", "--registry", str(chain), "--version", "v2"]) == 0
    assert (chain / "current").read_text().strip() == "v2"
    decision = _json(chain / "versions" / "v2" / "decision.json")
    assert decision["promoted"] and decision["candidate_score"] == pytest.approx(decision["current_score"] + 0.5)
    # v1's evaluation was made when nothing was current: stale now, so it cannot take the pointer back
    assert retrain.main(["promote", "--registry", str(chain), "--version", "v1"]) == 0
    assert (chain / "current").read_text().strip() == "v2"
    assert "stale" in _json(chain / "versions" / "v1" / "decision.json")["reason"]


def _evaluation(candidate: dict, champion: dict | None, version: str = "new") -> dict:
    return {"metric": "SDR", "candidate": {"version": version, "per_target": candidate},
            "champion": {"version": "old", "per_target": champion} if champion is not None else None}


@pytest.mark.parametrize("candidate, champion, current, promoted", [
    ({"vocals": 3.0, "drums": 2.0}, {"vocals": 2.0, "drums": 2.0}, "old", True),
    ({"vocals": 2.0, "drums": 2.0}, {"vocals": 2.0, "drums": 2.0}, "old", False),  # equal is not better
    ({"vocals": None, "drums": 9.0}, {"vocals": 2.0, "drums": 2.0}, "old", False),  # unscored stem
    ({"vocals": 3.0}, None, None, True),  # nothing current yet
    ({"vocals": 3.0}, None, "old", False),  # evaluated before `old` was promoted: stale
    ({"vocals": 3.0, "bass": -50.0}, {"vocals": 2.0}, "old", True),  # only stems both models have count
])
def test_decide(candidate, champion, current, promoted):
    assert retrain.decide(_evaluation(candidate, champion), current)["promoted"] is promoted


def test_min_improvement_raises_the_bar():
    evaluation = _evaluation({"vocals": 2.4}, {"vocals": 2.0})
    assert retrain.decide(evaluation, "old", min_improvement=0.3)["promoted"]
    assert not retrain.decide(evaluation, "old", min_improvement=0.5)["promoted"]


@pytest.mark.gcs
def test_gate_on_a_gs_registry(gcs_bucket):  # noqa: F811
    from beam_jobs import storage

    registry = f"{gcs_bucket}/registry"
    storage.write_text_atomic(f"{registry}/versions/a/model/config.json", "{}")
    storage.write_text_atomic(f"{registry}/versions/a/evaluation.json",
                              json.dumps(_evaluation({"vocals": 1.0}, None, "a")))
    assert retrain.promote(registry, "a")["promoted"]
    assert retrain.current_version(registry) == "a"
    assert json.loads(storage.read_text(f"{registry}/versions/a/decision.json"))["promoted"]


def test_versions_are_safe_folder_names():
    assert retrain.check_version(retrain.new_version())
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            retrain.check_version(bad)
