"""The memory estimate reads DeepSpeed offload from the config's sections, not its name: offload_optimizer takes
the optimizer states off the device, offload_param (ZeRO-3) the weights too but for the layer being computed."""

import json

import pytest

from gcrm_kit.memory import estimate_memory
from gcrm_kit.params import RMTrainingParams, from_dict


def _config(tmp_path, name, stage, **offload):
    zero = {"stage": stage, **{k: {"device": v} for k, v in offload.items()}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"zero_optimization": zero}))
    return str(path)


def _estimate(policy_dir, deepspeed, n=4):
    return estimate_memory(from_dict(RMTrainingParams, {"distributed": {"n_processes": n, "deepspeed": deepspeed}}),
                           policy_dir)


def test_offload_read_from_the_config_sections(tiny_policy_dir, tmp_path):
    layers = json.loads((tiny_policy_dir / "config.json").read_text())["num_hidden_layers"]
    one, _ = estimate_memory(RMTrainingParams(), tiny_policy_dir)
    z3, _ = _estimate(tiny_policy_dir, "zero3")
    # params/deepspeed/zero3_offload.json: optimizer and parameters both on the CPU
    off, mode = _estimate(tiny_policy_dir, "zero3_offload")
    assert "offload: optimizer and parameters" in mode
    assert off.optimizer == 0 and off.weights == pytest.approx(one.weights / layers)
    assert off.offloaded == pytest.approx(z3.optimizer + z3.weights) and off.gradients == z3.gradients
    assert off.total < z3.total and "offloaded to host memory" in off.describe(mode)

    # a config whose name says nothing about offload still offloads what its sections say
    opt_only, mode = _estimate(tiny_policy_dir, _config(tmp_path, "my_stage3", 3, offload_optimizer="cpu"))
    assert "offload: optimizer" in mode and "parameters" not in mode
    assert opt_only.optimizer == 0 and opt_only.weights == z3.weights and opt_only.offloaded == z3.optimizer
    params_only, _ = _estimate(tiny_policy_dir, _config(tmp_path, "nvme3", 3, offload_param="nvme"))
    assert params_only.optimizer == z3.optimizer and params_only.weights == pytest.approx(one.weights / layers)

    # ... and a name that says offload does not, when the sections keep everything on the device
    none, mode = _estimate(tiny_policy_dir, _config(tmp_path, "zero3_offload_off", 3, offload_optimizer="none",
                                                    offload_param="none"))
    assert "offload" not in mode
    assert (none.weights, none.optimizer, none.offloaded) == (z3.weights, z3.optimizer, 0.0)

    # parameter offload is ZeRO-3 only: under ZeRO-2 the section does nothing, the weights stay whole
    z2, _ = _estimate(tiny_policy_dir, _config(tmp_path, "z2", 2, offload_optimizer="cpu", offload_param="cpu"))
    assert z2.weights == one.weights and z2.optimizer == 0 and z2.offloaded == pytest.approx(one.optimizer / 4)
