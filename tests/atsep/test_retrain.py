"""`atsep retrain`: the real local chain on tiny generated songs, its input checks (all before any
preprocessing), and the promote gate's decisions and exit codes."""
from __future__ import annotations

import json
import shutil

import pytest

from atsep import retrain, synth

VALID = "Synth 001 - Seed 0"  # a training song the trainer validates on (chooses its epoch with)
HELD_OUT = "Synth 002 - Seed 0"  # generated into test/: the gate's song


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Three tiny songs, two in train/ (one of them the validation song) and one in test/, and a tiny config."""
    from model.config import Config

    root = tmp_path_factory.mktemp("retrain")
    synth.generate(root / "songs", count=3, seconds=2.5, test_count=1, sample_rate=11025)
    config = Config().replace(  # tests/conftest.py's tiny_config, one head (museval's cost grows with
        network__filters=(4, 8, 16), network__patch_frames=32, network__dropout=0.0,  # the stems cubed)
        network__heads=("vocals",), data__patch_seconds=2.0, data__validation_tracks=(VALID,),
        training__batch_size=2, training__epochs=1, training__steps_per_epoch=2)
    config.save(root)
    return root


def _json(path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def chain(songs):
    """The real stages, in order, on one registry; each step's exit status kept for the tests:
    run v1 with an unreachable floor (kept: nothing current), promote v1 with floor 0 (promoted), v2 = v1's
    model (equal: kept), v3 = v1's model after v1's has been broken (current unscorable: blocked, then forced)."""
    registry = songs / "registry"
    codes = {}
    codes["run v1"] = retrain.main(["run", "--songs", str(songs / "songs"), "--registry", str(registry),
                                    "--work", str(songs / "work"), "--config", str(songs / "config.json"),
                                    "--version", "v1", "--min_over_mixture", "50"])
    codes["decision v1 floor"] = _json(registry / "versions" / "v1" / "decision.json")
    codes["promote v1"] = retrain.main(["promote", "--registry", str(registry), "--version", "v1",
                                        "--min_over_mixture", "0"])
    for version in ("v2", "v3"):
        shutil.copytree(registry / "versions" / "v1" / "model", registry / "versions" / version / "model")
    stage = ["--registry", str(registry), "--version", "v2"]
    codes["evaluate v2"] = retrain.main(["evaluate", *stage, "--songs", str(songs / "songs")])
    codes["promote v2"] = retrain.main(["promote", *stage, "--min_over_mixture", "0"])
    shutil.rmtree(registry / "versions" / "v1" / "model" / "saved_model")  # config.json stays: it looks fine
    stage = ["--registry", str(registry), "--version", "v3"]
    codes["evaluate v3"] = retrain.main(["evaluate", *stage, "--songs", str(songs / "songs")])
    codes["promote v3"] = retrain.main(["promote", *stage, "--min_over_mixture", "0"])
    codes["decision v3 blocked"] = _json(registry / "versions" / "v3" / "decision.json")
    codes["promote v3 --force"] = retrain.main(["promote", *stage, "--min_over_mixture", "0", "--force"])
    return registry, codes


def test_the_floor_refuses_a_first_model_and_says_so_by_exit_status(chain):
    registry, codes = chain
    assert codes["run v1"] == retrain.EXIT_KEPT
    decision = codes["decision v1 floor"]
    assert not decision["promoted"] and "below the floor" in decision["reason"]
    assert decision["floor"] == pytest.approx(decision["mixture_score"] + 50)
    assert codes["promote v1"] == retrain.EXIT_OK


def test_models_are_scored_on_the_held_out_song_only(chain):
    registry, _ = chain
    evaluation = _json(registry / "versions" / "v1" / "evaluation.json")
    assert evaluation["split"] == "test" and evaluation["tracks"] == [HELD_OUT]
    assert evaluation["champion"] is None
    assert set(evaluation["candidate"]["per_target"]) == set(evaluation["baseline"]["per_target"]) \
        == {"vocals", "residual"}
    assert all(isinstance(sdr, float) for sdr in evaluation["candidate"]["per_target"].values())
    # what the trainer saw: train and valid songs, never the gate's
    from audio.musdb import find_tracks

    paths = [path.as_posix() for path in (registry.parent / "songs").rglob("*.mp4")]
    splits = {track.name: track.split for track in find_tracks((registry.parent / "songs").as_posix(), paths, (VALID,))}
    assert splits == {"Synth 000 - Seed 0": "train", VALID: "valid", HELD_OUT: "test"}


def test_an_equal_model_is_scored_beside_the_current_one_and_refused(chain):
    registry, codes = chain
    assert codes["evaluate v2"] == retrain.EXIT_OK and codes["promote v2"] == retrain.EXIT_KEPT
    evaluation = _json(registry / "versions" / "v2" / "evaluation.json")
    first = _json(registry / "versions" / "v1" / "evaluation.json")["candidate"]["per_target"]
    assert evaluation["champion"]["version"] == "v1"
    assert evaluation["champion"]["per_target"] == pytest.approx(first, abs=1e-4)
    assert evaluation["candidate"]["per_target"] == pytest.approx(first, abs=1e-4)
    decision = _json(registry / "versions" / "v2" / "decision.json")
    assert not decision["promoted"] and decision["current_before"] == "v1"
    assert decision["min_improvement"] == retrain.DEFAULT_MIN_IMPROVEMENT


def test_a_current_model_that_cannot_be_scored_blocks_promotion_unless_forced(chain):
    registry, codes = chain
    evaluation = _json(registry / "versions" / "v3" / "evaluation.json")
    assert codes["evaluate v3"] == retrain.EXIT_OK
    assert evaluation["champion"]["version"] == "v1" and evaluation["champion"]["per_target"] is None
    assert evaluation["champion"]["error"]
    blocked = codes["decision v3 blocked"]
    assert codes["promote v3"] == retrain.EXIT_KEPT and not blocked["promoted"]
    assert "could not be scored" in blocked["reason"] and "--force" in blocked["reason"]
    assert codes["promote v3 --force"] == retrain.EXIT_OK
    assert (registry / "current").read_text().strip() == "v3"
    assert _json(registry / "versions" / "v3" / "decision.json")["force"] is True


# --- every input checked before preprocessing ---------------------------------------------------------

@pytest.fixture
def no_expensive_work(monkeypatch):
    """Preprocess and training must not start: the checks come first."""
    from beam_jobs import preprocess
    from trainer import task

    def refuse(argv):
        raise AssertionError(f"expensive work started: {argv}")

    monkeypatch.setattr(preprocess, "main", refuse)
    monkeypatch.setattr(task, "main", refuse)


def _run(songs_root, registry, work, config=None) -> list[str]:
    return ["run", "--songs", str(songs_root), "--registry", str(registry), "--work", str(work),
            "--version", "x", *(["--config", str(config)] if config else [])]


def test_no_held_out_songs_stops_the_chain_before_it_preprocesses(songs, tmp_path, no_expensive_work, capsys):
    only_train = tmp_path / "songs"
    shutil.copytree(songs / "songs" / "train", only_train / "train")
    registry = tmp_path / "registry"
    assert retrain.main(_run(only_train, registry, tmp_path / "work", songs / "config.json")) == retrain.EXIT_INVALID
    assert "no 'test' songs" in capsys.readouterr().err
    assert not (registry / "versions").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("problem", ["missing songs", "bad config", "registry not writable", "seen song",
                                     "current without model", "version exists"])
def test_each_missing_input_is_named_before_any_work(problem, songs, tmp_path, no_expensive_work, capsys):
    songs_root, registry, config = songs / "songs", tmp_path / "registry", songs / "config.json"
    if problem == "missing songs":
        songs_root = tmp_path / "nowhere"
    elif problem == "bad config":
        config = tmp_path / "config.json"
        config.write_text('{"training": {"epochz": 3}}')
    elif problem == "registry not writable":
        (tmp_path / "a-file").write_text("")
        registry = tmp_path / "a-file" / "registry"
    elif problem == "seen song":
        songs_root = tmp_path / "songs"
        shutil.copytree(songs / "songs", songs_root)
        shutil.copy(songs_root / "test" / f"{HELD_OUT}.stem.mp4", songs_root / "train")
    elif problem == "current without model":
        registry.mkdir()
        (registry / "current").write_text("gone\n")
    else:
        (registry / "versions" / "x" / "model").mkdir(parents=True)
        (registry / "versions" / "x" / "model" / "config.json").write_text("{}")
    assert retrain.main(_run(songs_root, registry, tmp_path / "work", config)) == retrain.EXIT_INVALID
    error = capsys.readouterr().err
    assert "invalid input" in error
    expected = {"missing songs": "does not exist", "bad config": "epochz", "registry not writable": "not writable",
                "seen song": "both training and 'test'", "current without model": "--force",
                "version exists": "already exists"}[problem]
    assert expected in error


@pytest.mark.parametrize("status, trains", [(1, True), (2, False)])
def test_dead_lettered_songs_do_not_stop_the_chain_but_a_failed_preprocess_does(status, trains, songs, tmp_path,
                                                                                monkeypatch):
    """preprocess exits 1 when it completed with songs in its dead letter (trained without them), 2 on bad options."""
    from beam_jobs import preprocess
    from trainer import task

    reached = []
    monkeypatch.setattr(preprocess, "main", lambda argv: status)
    monkeypatch.setattr(task, "main", lambda argv: reached.append(argv) or 1)  # training fails: stop there
    code = retrain.main(_run(songs / "songs", tmp_path / "registry", tmp_path / "work", songs / "config.json"))
    assert code == retrain.EXIT_FAILED and bool(reached) is trains


def test_check_stage_passes_and_force_lets_an_unscorable_current_model_through(songs, tmp_path, capsys):
    registry = tmp_path / "registry"
    check = ["check", "--songs", str(songs / "songs"), "--registry", str(registry), "--config",
             str(songs / "config.json")]
    assert retrain.main(check) == retrain.EXIT_OK
    assert "1 train, 1 valid, 1 test songs; the gate scores 1; current model: none" in capsys.readouterr().out
    (registry / "current").write_text("gone\n")
    assert retrain.main(check) == retrain.EXIT_INVALID
    assert retrain.main([*check, "--force"]) == retrain.EXIT_OK
    assert "current model: gone" in capsys.readouterr().out
    assert not list(registry.glob(".write-check-*"))  # the probe is cleaned up


def test_only_held_out_splits_can_score():
    for stage in (["evaluate", "--version", "v", "--songs", "s"], ["check", "--songs", "s"], ["run"]):
        with pytest.raises(SystemExit) as exit_info:
            retrain.parse_args([*stage, "--split", "valid"])
        assert exit_info.value.code == 2
    with pytest.raises(retrain.InputError):
        retrain.evaluate_version("r", "v", "s", split="valid")


# --- the gate -----------------------------------------------------------------------------------------

MIXTURE = {"vocals": -3.0, "drums": -3.0}  # mean -3 dB: the floor is -3 + min_over_mixture


def _evaluation(candidate: dict, champion: dict | None, version: str = "new", baseline: dict | None = None,
                split: str = "test") -> dict:
    return {"metric": "SDR", "split": split, "candidate": {"version": version, "per_target": candidate},
            "baseline": {"method": "mixture", "per_target": baseline or {t: -3.0 for t in candidate}},
            "champion": {"version": "old", "per_target": champion} if champion is not None else None}


@pytest.mark.parametrize("candidate, champion, current, promoted", [
    ({"vocals": 8.0, "drums": 8.0}, {"vocals": 3.0, "drums": 3.0}, "old", True),  # +5 dB > 4.5
    ({"vocals": 7.4, "drums": 7.4}, {"vocals": 3.0, "drums": 3.0}, "old", False),  # +4.4: within the seed spread
    ({"vocals": 3.0, "drums": 3.0}, {"vocals": 3.0, "drums": 3.0}, "old", False),  # equal is not better
    ({"vocals": None, "drums": 9.0}, {"vocals": 2.0, "drums": 2.0}, "old", False),  # unscored stem
    ({"vocals": 4.0}, None, None, True),  # nothing current yet, above the floor (-3 + 6)
    ({"vocals": 2.0}, None, None, False),  # nothing current yet, below the floor: noise is not promoted
    ({"vocals": 4.0}, None, "old", False),  # evaluated before `old` was promoted: stale
    ({"vocals": 9.0, "drums": 9.0}, {"vocals": 2.0}, "old", False),  # different stems: not comparable
    ({"vocals": 9.0}, {"vocals": None}, "old", False),  # the current model cannot be scored
])
def test_decide(candidate, champion, current, promoted):
    assert retrain.decide(_evaluation(candidate, champion), current)["promoted"] is promoted


def test_defaults_refuse_the_measured_seed_spread():
    """docs/retraining.md: the recipe's three seeds (5.30, 8.75, 9.73 dB) must not promote one another."""
    scores = (5.299, 8.752, 9.734)
    for old, new in ((a, b) for a in scores for b in scores if b > a):
        assert not retrain.decide(_evaluation({"vocals": new}, {"vocals": old}), "old")["promoted"]
    mixture = -3.483  # and the floor lets every trained one in, but not an untrained one (+4.0 dB)
    assert all(retrain.decide(_evaluation({"vocals": s}, None, baseline={"vocals": mixture}), None)["promoted"]
               for s in scores)
    assert not retrain.decide(_evaluation({"vocals": mixture + 4.0}, None, baseline={"vocals": mixture}),
                              None)["promoted"]


def test_force_promotes_past_an_unscorable_current_model_but_not_below_the_floor():
    unscorable = _evaluation({"vocals": 4.0}, {"vocals": None})
    assert not retrain.decide(unscorable, "old")["promoted"]
    assert retrain.decide(unscorable, "old", force=True)["promoted"]
    weak = _evaluation({"vocals": 2.0}, {"vocals": None})
    assert not retrain.decide(weak, "old", force=True)["promoted"]
    better = _evaluation({"vocals": 2.0}, {"vocals": 0.0})  # beats the current model, but below the floor
    assert not retrain.decide(better, "old", force=True)["promoted"]


def test_thresholds_are_strict_where_documented():
    evaluation = _evaluation({"vocals": 4.0}, {"vocals": 3.0})
    assert retrain.decide(evaluation, "old", min_improvement=0.9)["promoted"]
    assert not retrain.decide(evaluation, "old", min_improvement=1.0)["promoted"]  # must beat it by more
    first = _evaluation({"vocals": 3.0}, None)
    assert retrain.decide(first, None, min_over_mixture=6.0)["promoted"]  # exactly on the floor clears it
    assert not retrain.decide(first, None, min_over_mixture=6.01)["promoted"]


def test_evaluations_not_on_held_out_songs_are_refused():
    old_style = _evaluation({"vocals": 9.0}, None, split="valid")
    decision = retrain.decide(old_style, None)
    assert not decision["promoted"] and "held-out" in decision["reason"]
    no_baseline = _evaluation({"vocals": 9.0}, None)
    del no_baseline["baseline"]
    assert not retrain.decide(no_baseline, None)["promoted"]


@pytest.mark.gcs
def test_gate_and_checks_on_a_gs_registry(gcs_bucket, tmp_path):
    from beam_jobs import storage

    registry, songs = f"{gcs_bucket}/registry", f"{gcs_bucket}/songs"
    for split, name in (("train", "a"), ("test", "b")):
        storage.write_text_atomic(f"{songs}/{split}/{name}.stem.mp4", "not read by the checks")
    found = retrain.check_inputs(songs, registry)
    assert found["splits"] == {"train": 1, "valid": 0, "test": 1} and found["gate_tracks"] == ["b"]
    storage.write_text_atomic(f"{registry}/versions/a/model/config.json", "{}")
    storage.write_text_atomic(f"{registry}/versions/a/evaluation.json",
                              json.dumps(_evaluation({"vocals": 4.0}, None, "a")))
    assert retrain.main(["promote", "--registry", registry, "--version", "a"]) == retrain.EXIT_OK
    assert retrain.current_version(registry) == "a"
    assert json.loads(storage.read_text(f"{registry}/versions/a/decision.json"))["promoted"]


def test_kept_exit_code_is_configurable(tmp_path):
    registry = tmp_path / "registry"
    (registry / "versions" / "a" / "model").mkdir(parents=True)
    (registry / "versions" / "a" / "model" / "config.json").write_text("{}")
    (registry / "versions" / "a" / "evaluation.json").write_text(json.dumps(_evaluation({"vocals": 0.0}, None, "a")))
    promote = ["promote", "--registry", str(registry), "--version", "a"]
    assert retrain.main(promote) == retrain.EXIT_KEPT == 3
    assert retrain.main([*promote, "--kept_exit_code", "0"]) == 0
    assert retrain.main(["promote", "--registry", str(registry), "--version", "nope"]) == retrain.EXIT_INVALID


def test_versions_are_safe_folder_names():
    assert retrain.check_version(retrain.new_version())
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            retrain.check_version(bad)
