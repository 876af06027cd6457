"""The shipped toy policy (toyworld.shipped): built from the default params by `gcrm ship-policy`, checked against
the world code that must produce it, used only when its key matches, and never when `policy.shipped` is false."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gcrm_kit.params import load_params
from gcrm_kit.toyworld import policy as policy_module
from gcrm_kit.toyworld.policy import corpus_sha256, get_policy, policy_cache_key
from gcrm_kit.toyworld.shipped import PROVENANCE, SHIPPED_FILES, check_shipped, find_shipped, sha256_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy():
    return load_params("01_rm_training", ROOT / "params" / "01_rm_training" / "toy.yaml")


def test_the_default_world_ships_its_policy_and_the_world_code_still_makes_its_corpus(toy):
    key = policy_cache_key(toy.world, toy.policy, toy.seed)
    folder = find_shipped(key)
    assert folder is not None, "the default params have no shipped policy: run `gcrm ship-policy --params toy`"
    prov = check_shipped(folder)
    assert prov["key"] == json.loads(json.dumps(key))
    # the corpus the world code makes today is the one the shipped policy was trained on
    assert prov["corpus_sha256"] == corpus_sha256(toy.world, toy.seed)
    assert set(prov["files"]) == set(SHIPPED_FILES)
    assert json.loads((folder / "verdict_check.json").read_text())["verdict_auroc"] >= toy.policy.min_verdict_auroc


def test_a_changed_file_is_refused_by_name(toy, tmp_path):
    folder = find_shipped(policy_cache_key(toy.world, toy.policy, toy.seed))
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    with open(copy / "tokenizer_config.json", "a") as f:
        f.write(" ")
    with pytest.raises(ValueError, match="file tokenizer_config.json differs from its recorded sha256"):
        find_shipped(policy_cache_key(toy.world, toy.policy, toy.seed), root=tmp_path)
    (copy / PROVENANCE).unlink()
    with pytest.raises(ValueError, match="PROVENANCE.json missing"):
        check_shipped(copy)


def test_get_policy_copies_the_shipped_policy_instead_of_training(toy, tmp_path, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained although a shipped policy matches")

    monkeypatch.setattr(policy_module, "train_policy", no_training)
    d = get_policy(toy.world, toy.policy, toy.seed, tmp_path)
    shipped = find_shipped(policy_cache_key(toy.world, toy.policy, toy.seed))
    assert sha256_of(d / "model.safetensors") == sha256_of(shipped / "model.safetensors")
    assert json.loads((d / "source.json").read_text())["source"] == "shipped"


def test_shipped_false_trains_and_another_seed_finds_nothing(toy, tmp_path, monkeypatch):
    class Trained(Exception):
        pass

    def training(*a, **k):
        raise Trained

    monkeypatch.setattr(policy_module, "train_policy", training)
    off = type(toy.policy)(**{**toy.policy.__dict__, "shipped": False})
    with pytest.raises(Trained):
        get_policy(toy.world, off, toy.seed, tmp_path / "a")
    assert find_shipped(policy_cache_key(toy.world, toy.policy, toy.seed + 7)) is None
    with pytest.raises(Trained):
        get_policy(toy.world, toy.policy, toy.seed + 7, tmp_path / "b")
    # `shipped` decides which policy is used, not how one is trained: it stays out of the cache key
    assert policy_cache_key(toy.world, off, 0) == policy_cache_key(toy.world, toy.policy, 0)
