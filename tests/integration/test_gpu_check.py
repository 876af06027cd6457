"""The GPU check (tests/benchmarks/gpu_check.py, not collected) still runs: its CPU smoke run trains tiny random
Llama reward models for a few steps in each mode and writes a sane results JSON (MFU from the given peak, the
parameter count a hand count gives); a run over its time box, an out-of-memory error and a failed sanity check are
reported per configuration, not raised. Speed is never asserted."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

# tiny: hidden 64, MLP 128, 2 layers, 2 heads of 32 (as many KV heads), vocab 256, untied, a bias-free scalar head
TINY_LAYER = 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64  # q k v o, gate up down, two norms
TINY_PARAMS = 256 * 64 + 2 * TINY_LAYER + 64 + 64  # embedding, layers, final norm, score head
FINITE_KEYS = ("tokens_per_s", "step_time_s", "achieved_tflops", "mfu", "peak_memory_gib", "estimate_gib",
               "flops_per_token", "wall_s")


@pytest.fixture(scope="module")
def gc():
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_check

        yield gpu_check
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def lib(gc):
    import gpu_checklib

    return gpu_checklib


@pytest.mark.slow
def test_cpu_smoke_run_writes_sane_results(gc, tmp_path):
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    rc = gc.main(["--device", "cpu", "--sizes", "tiny", "--modes", "full,lora,qlora", "--steps", "2", "--warmup", "1",
                  "--peak-tflops", "0.5", "--out", str(tmp_path / "out")])
    res = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert rc == 0 and res["ok"] is True and res["finished"] and res["device"] == "cpu"
    assert res["versions"]["torch"] and res["versions"]["transformers"]
    by_mode = {c["mode"]: c for c in res["configs"]}
    assert [c["name"] for c in res["configs"]] == ["tiny/full", "tiny/lora", "tiny/qlora"]
    if not has_bnb:
        assert by_mode.pop("qlora")["status"] == "skipped"
    for mode, c in by_mode.items():
        assert c["status"] == "ok", c
        for key in FINITE_KEYS:
            assert isinstance(c[key], (int, float)) and math.isfinite(c[key]) and c[key] > 0, (mode, key, c[key])
        assert c["steps_run"] == 3 and c["timed_steps"] == 2 and c["tokens_per_step"] == 2 * 2 * 64
        assert len(c["losses"]) == 3 and all(math.isfinite(x) for x in c["losses"] + c["grad_norms"])
        assert c["sanity"]["ok"] and c["sanity"]["finite"] and c["sanity"]["grad_nonzero"]
        assert c["n_params"] == TINY_PARAMS and c["flop_params"] == TINY_PARAMS - 256 * 64
        assert c["flops_per_token"] == (6 if mode == "full" else 4) * c["flop_params"]
        assert c["peak_tflops"] == 0.5 and c["peak_tflops_source"] == "--peak-tflops"
        assert c["mfu"] == pytest.approx(c["flops_per_token"] * c["tokens_per_s"] / 0.5e12, rel=1e-9)
        assert c["memory_vs_estimate"] is None and c["peak_memory_source"] == "process peak RSS"  # no GPU here
    assert by_mode["full"]["n_trainable"] == TINY_PARAMS
    assert by_mode["lora"]["n_trainable"] < TINY_PARAMS / 2 and by_mode["lora"]["n_4bit_layers"] == 0
    if has_bnb:
        assert by_mode["qlora"]["n_4bit_layers"] == 2 * 7  # every projection of both layers, not the head
    assert (tmp_path / "out" / "logs").is_dir()


@pytest.mark.slow
def test_configuration_over_its_time_box_is_killed_and_reported(gc, tmp_path):
    rc = gc.main(["--device", "cpu", "--sizes", "tiny", "--modes", "full", "--isolate", "yes",
                  "--config-timeout", "1", "--out", str(tmp_path / "out")])
    res = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    (c,) = res["configs"]
    assert rc == 1 and res["ok"] is False and res["finished"]
    assert c["status"] == "timeout" and "time box" in c["reason"]
    assert "--worker" in (tmp_path / "out" / "logs" / "tiny_full.log").read_text()


@pytest.mark.slow
@pytest.mark.distributed
def test_zero3_over_two_cpu_processes(gc, tmp_path):
    pytest.importorskip("deepspeed")
    # generous time: DeepSpeed builds its CPU communication op on first use (minutes on a small machine)
    rc = gc.main(["--device", "cpu", "--sizes", "tiny", "--modes", "zero3", "--steps", "2", "--warmup", "1",
                  "--peak-tflops", "0.5", "--budget-s", "1200", "--config-timeout", "900",
                  "--out", str(tmp_path / "out")])
    (c,) = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["configs"]
    assert rc == 0 and c["status"] == "ok" and c["world"] == 2 and c["sanity"]["ok"]
    assert c["n_trainable"] == TINY_PARAMS  # counted from ZeRO-3's partitioned parameters' full sizes
    assert c["tokens_per_step"] == 2 * 2 * 64 * 2 and len(c["peak_memory_gib_per_rank"]) == 2
    assert c["mfu"] == pytest.approx(c["flops_per_token"] * c["tokens_per_s"] / (2 * 0.5e12), rel=1e-9)
    assert "ZeRO-3 over 2 processes" in c["mode_description"]


def test_out_of_memory_is_reported_not_raised(lib, tmp_path, monkeypatch):
    from gcrm_kit.training import RewardTrainer

    lib.prepare_policy({"size": "tiny", "device": "cpu", "seed": 0, "policy_dir": str(tmp_path / "policy")})

    def oom(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(RewardTrainer, "train", oom)
    job = {"size": "tiny", "mode": "full", "device": "cpu", "seed": 0, "steps": 1, "warmup": 0, "peak_tflops": 1.0,
           "policy_dir": str(tmp_path / "policy"), "out_dir": str(tmp_path / "run"), "time_box_s": 60}
    res = lib.run_config(job)
    assert res["status"] == "oom" and res["reason"].startswith("CUDA out of memory")
    assert res["estimate_gib"] > 0 and math.isfinite(res["peak_memory_gib"])  # what was known before the failure
    assert lib.failure(RuntimeError("bnb: CUDA error: out of memory"))[0] == "oom"
    assert lib.failure(ValueError("bad"))[1] == "ValueError: bad"


def test_sanity_and_peak_table(lib):
    assert lib.sanity([1.0, 0.5], [1.0, 2.0])["ok"]
    assert lib.sanity([1.0, 0.9], [0.0, 0.0])["ok"]  # no gradient norm, but the loss fell
    assert not lib.sanity([1.0, 1.0], [0.0, 0.0])["ok"]  # neither
    assert not lib.sanity([1.0, float("nan")], [1.0, 1.0])["ok"]
    assert not lib.sanity([1.0, 0.5], [1.0, float("inf")])["ok"]
    assert not lib.sanity([], [])["ok"]
    assert lib.peak_tflops("NVIDIA H200", None) == (989.0, "table (H200)")
    assert lib.peak_tflops("NVIDIA A100-SXM4-80GB", None)[0] == 312.0
    assert lib.peak_tflops("NVIDIA H100 80GB HBM3", 500.0) == (500.0, "--peak-tflops")
    assert lib.peak_tflops("cpu", None)[0] is None
