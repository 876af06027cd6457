"""The benchmark suite (tests/benchmarks, not collected) still runs: its training part on a tiny model for two
steps, in this process, writes results.json and results.md with the expected keys into a new run folder. Nothing
about speed is checked (timings are measured and reported, never asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def suite():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_suite

        yield bench_suite
    finally:
        sys.path.remove(str(BENCH))


def test_training_part_writes_json_and_markdown(suite, tmp_path):
    has_trl = importlib.util.find_spec("trl") is not None
    trainers = (["trl"] if has_trl else []) + ["kit_baseline", "kit_contrastive", "kit_grm_sft"]
    argv = ["--only", "training,end_to_end,pruning", "--sizes", "tiny", "--trainers", ",".join(trainers),
            "--steps", "2", "--warmup", "1", "--paired-steps", "2", "--batch-size", "4", "--n-pairs", "16",
            "--in-process", "--output-root", str(tmp_path), "--runs-root", str(tmp_path / "none"), "--name", "t"]
    run_dir = suite.main(argv)
    assert run_dir.parent == tmp_path / "benchmarks" / "t"
    res = json.loads((run_dir / "results.json").read_text())
    assert set(res) >= {"config", "parts", "skipped", "seconds"}
    assert "pruning" in res["skipped"]  # no --rm-run: skipped with a reason, not failed
    training = res["parts"]["training"]
    assert {r["trainer"] for r in training["rows"]} == set(trainers)
    for r in training["rows"]:
        assert set(r) >= {"size", "step_seconds", "pairs_per_s", "tokens_per_s", "peak_mib", "peak_steps_mib",
                          "speed_vs_trl", "memory_vs_trl", "step_time_vs_kit_baseline"}
        assert len(r["all_step_seconds"]) == 2 and r["pairs_per_s"] > 0 and r["tokens_per_s"] > r["pairs_per_s"]
        assert (r["speed_vs_trl"] is not None) == has_trl
    (paired,) = training["paired"]
    assert set(paired) >= {"kit_baseline_seconds", "kit_contrastive_seconds", "contrastive_overhead", "kit_vs_trl"}
    assert (paired["kit_vs_trl"] is not None) == has_trl
    md = (run_dir / "results.md").read_text()
    assert "## Training" in md and "| tiny | kit_contrastive |" in md and "contrastive overhead" in md
    assert "## Pruning" in md and "Skipped" in md
    assert ("| tiny | trl |" in md) == has_trl
    assert (run_dir / "env.txt").is_file()
    # a second run never writes into the first one's folder
    assert suite.main(["--only", "end_to_end"] + argv[2:]) != run_dir


def test_end_to_end_reads_papermill_durations(suite, tmp_path):
    run = tmp_path / "01_rm_training" / "toy" / "20260101-000000_seed0"
    run.mkdir(parents=True)
    nb = {"cells": [], "metadata": {"papermill": {"duration": 90.5, "exception": None, "start_time": "a",
                                                  "end_time": "b"}}, "nbformat": 4, "nbformat_minor": 5}
    (run / "01_rm_training.ipynb").write_text(json.dumps(nb))
    failed = tmp_path / "02_representation_analysis" / "toy" / "20260101-000000_seed0"
    failed.mkdir(parents=True)
    nb["metadata"]["papermill"]["exception"] = True
    (failed / "02_representation_analysis.ipynb").write_text(json.dumps(nb))
    rows = suite.notebook_durations(tmp_path)
    assert [(r["notebook"], r["seconds"]) for r in rows] == [("01_rm_training", 90.5)]
