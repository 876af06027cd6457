"""Every process of a launched reward-model training executes ``python -m gcrm_kit.rm_training.worker <job.json>``:
the module runs as a program, reads the job and names a job it does not know."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcrm_kit import launch
from gcrm_kit.rm_training.train import WORKER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_worker_runs_as_a_module(tmp_path):
    """`python -m gcrm_kit.rm_training.worker` is what every launched process executes."""
    job = tmp_path / "job.json"
    launch.write_job(job, WORKER, "nothing")
    out = subprocess.run([sys.executable, "-m", WORKER, str(job)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 1 and "unknown stage 'nothing'" in out.stderr
    assert "found in sys.modules" not in out.stderr  # the package does not import the module it runs as __main__
