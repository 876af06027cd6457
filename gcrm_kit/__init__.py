"""gcrm_kit: train, probe and use goal-conditioned reward models from parameterised notebooks.

Where things live (docs/layout.md has the full map):
- one stage package per notebook: `rm_training` (01), `representation` (02), `filtering` (03), `steering` (04);
  stage packages import only the shared modules below, never each other;
- `rm_runs`: the contract between notebook 01's run folders and notebooks 02-04;
- shared modules: `params` (one params class per notebook), `runs` (run folders, cache, seeding), `io` (atomic
  writes, project paths), `notebooks` (headless runs through papermill), `device`, `data`, `real_data`, `models`,
  `qvalues`, `losses`, `training`, `generation`, `evaluation`, `plots`, `launch`, `memory`, `toyworld`.
"""

from .quiet import quiet_third_party

quiet_third_party()

__version__ = "0.1.0"
