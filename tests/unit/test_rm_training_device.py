"""Notebook 01's `device` param: the kit's device names (auto, cpu, cuda, cuda:<i>) pass, anything else stops at
the params with the key named; the stage resolves it with `gcrm_kit.device.resolve_device`."""

import pytest

from gcrm_kit.params import ParamsError, RMTrainingParams, from_dict


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_of_the_kit_pass(name):
    assert from_dict(RMTrainingParams, {"device": name}).device == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "mps"])
def test_other_device_names_stop_at_the_params(name):
    with pytest.raises(ParamsError, match=rf"device: expected one of auto, cpu, cuda or cuda:<index>, got '{name}'"):
        from_dict(RMTrainingParams, {"device": name})


def test_default_is_auto():
    assert RMTrainingParams().device == "auto"
