"""The shipped toy policy (toyworld.shipped): built from the default params by `gcrm ship-policy`, checked against
the world code that must produce it, used only when its key matches, and never when `policy.shipped` is false."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gcrm_kit.params import load_params
from gcrm_kit.toyworld import policy as policy_module
from gcrm_kit.toyworld.policy import corpus_sha256, get_policy, policy_cache_key
from gcrm_kit.toyworld.shipped import (PROVENANCE, SHARD_BYTES, SHIPPED_FILES, WEIGHTS, check_shipped, find_shipped,
                                       sha256_of, write_weights)

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
    weights = {n for n in prov["files"] if n.startswith("model")}
    assert set(prov["files"]) - weights == set(SHIPPED_FILES) - {WEIGHTS}
    assert WEIGHTS in weights or f"{WEIGHTS}.index.json" in weights
    # no file of the package is larger than a source repository should hold
    assert all((folder / n).stat().st_size <= SHARD_BYTES for n in prov["files"])
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
    source = json.loads((d / "source.json").read_text())
    assert source["source"] == "shipped"
    for name, digest in source["files"].items():  # weights (or their shards and index) copied byte for byte
        assert sha256_of(d / name) == digest == sha256_of(shipped / name)
    assert {n for n in source["files"] if n.startswith("model")} == {p.name for p in shipped.glob("model*")}


def test_large_weights_ship_as_shards_whose_tensors_are_unchanged(tmp_path):
    tensors = {f"layer{i}.weight": torch.randn(64, 64, generator=torch.Generator().manual_seed(i)) for i in range(5)}
    src = tmp_path / "model.safetensors"
    save_file(tensors, src, metadata={"format": "pt"})
    out = tmp_path / "out"
    out.mkdir()
    names = write_weights(src, out, max_bytes=40_000)  # each tensor is 16 kB: three shards
    assert names[-1] == "model.safetensors.index.json" and len(names) == 4
    index = json.loads((out / names[-1]).read_text())
    assert set(index["weight_map"]) == set(tensors)
    back = {}
    for shard in names[:-1]:
        assert (out / shard).stat().st_size <= 40_000
        back.update(load_file(out / shard))
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
    small = tmp_path / "small"
    small.mkdir()
    assert write_weights(src, small, max_bytes=10**6) == ["model.safetensors"]
    assert sha256_of(small / "model.safetensors") == sha256_of(src)


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
