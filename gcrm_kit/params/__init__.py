"""Params dataclasses, one per notebook, built from small shared pieces; strict YAML loading.

Each notebook has one params class (its docstring names the notebook), in the module named after the notebook's
stage: `rm_training` (01), `representation` (02), `filtering` (03), `steering` (04). Pieces used by several
notebooks live in `scale` (models, LoRA, 4-bit, processes, real data sets) and `world` (the toy world); `core`
converts mappings to params and back, `loading` reads params files and parameters cells. A class's fields are
mirrored by the notebook's papermill parameters cell and by the YAML files in ``params/<notebook>/``. A YAML file
is a short diff over the dataclass defaults; nested sections may be given in part. Unknown keys and wrong types
are errors that name the file and the key, raised before anything runs (papermill itself only warns).

Building params does no I/O; `runs.start_run` makes the run folder.
"""

from .core import ParamsError, dump_yaml, from_dict, read_yaml, to_dict
from .filtering import FilteringParams, FrontierParams, OnlineParams
from .loading import NOTEBOOK_PARAMS, from_notebook, load_params, parameters_cell_defaults
from .representation import PrototypeSpec, ProjectionParams, RepresentationParams
from .rm_training import (ContrastiveParams, EvaluationParams, PairsParams, ProcessParams, RewardModelSpec,
                          RewardTrainingParams, RMTrainingParams, step_separator_of)
from .scale import DataParams, DatasetSpec, DistributedParams, LoraParams, ModelParams, QuantParams, validate_scale
from .steering import AttributePrototype, BeamParams, SteeringDataParams, SteeringParams, SteeringTarget
from .world import PolicyParams, WorldParams

__all__ = [
    "AttributePrototype", "BeamParams", "ContrastiveParams", "DataParams", "DatasetSpec", "DistributedParams",
    "EvaluationParams", "FilteringParams", "FrontierParams", "LoraParams", "ModelParams", "NOTEBOOK_PARAMS",
    "OnlineParams", "PairsParams", "ParamsError", "PolicyParams", "ProcessParams", "PrototypeSpec", "ProjectionParams",
    "QuantParams",
    "RMTrainingParams", "RepresentationParams", "RewardModelSpec", "RewardTrainingParams", "SteeringDataParams",
    "SteeringParams", "SteeringTarget", "WorldParams", "dump_yaml", "from_dict", "from_notebook", "load_params",
    "parameters_cell_defaults", "read_yaml", "step_separator_of", "to_dict", "validate_scale",
]
