"""Every notebook: committed without outputs, parameters cell equal to its params dataclass, and a papermill
smoke run with its smoke.yaml whose run folder holds a sane metrics.json. Notebooks are found by glob."""

import ast
import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from gcrm_kit.params import NOTEBOOK_PARAMS, parameters_cell_defaults

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_notebook_has_a_params_class():
    assert NOTEBOOKS
    assert sorted(nb.stem for nb in NOTEBOOKS) == sorted(NOTEBOOK_PARAMS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(nb):
    cells = nbformat.read(nb, as_version=4).cells
    dirty = [i for i, c in enumerate(cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{nb.name}: cells {dirty} carry outputs; strip them"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_mirrors_dataclass(nb):
    cls = NOTEBOOK_PARAMS[nb.stem]
    found = pm.inspect_notebook(str(nb))
    got = {name: ast.literal_eval(v["default"]) for name, v in found.items()}
    assert got == parameters_cell_defaults(cls)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_function_definitions_in_notebooks(nb):
    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type == "code":
            tree = ast.parse(c.source)
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))], \
                f"{nb.name}: a def/class belongs in gcrm_kit"


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke_run(nb, tmp_path, monkeypatch):
    from gcrm_kit.cli import main

    smoke = ROOT / "params" / nb.stem / "smoke.yaml"
    text = smoke.read_text() + f"\noutput_root: {tmp_path}\n"
    params = tmp_path / "smoke.yaml"
    params.write_text(text)
    monkeypatch.chdir(ROOT)
    assert main(["run", nb.stem, "--params", str(params), "--quiet"]) == 0
    runs = list((tmp_path / nb.stem / "smoke").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert (run / f"{nb.stem}.ipynb").is_file() and (run / "params.resolved.yaml").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["notebook"] == nb.stem and metrics["params_name"] == "smoke"
    check = SANITY.get(nb.stem)
    if check:
        check(metrics, run)


def _check_rm_training(metrics, run):
    assert {r["reward_model"] for r in metrics["rows"]} == {"baseline", "goal_conditioned"}
    for row in metrics["rows"]:
        assert 0.0 <= row["pairwise_accuracy"] <= 1.0
        for split, v in row["auroc"].items():
            assert v != v or 0.0 <= v <= 1.0  # NaN only when a split has one class
    for split, acc in metrics["policy_accuracy"].items():
        assert 0.0 <= acc <= 1.0
    for name in ("baseline_seed0", "goal_conditioned_seed0"):
        d = run / "reward_models" / name
        assert (d / "config.json").is_file() and (d / "prototypes" / "correct.pt").is_file()
    for fig in ("training_curves", "auroc_by_split"):
        assert (run / "figures" / f"{fig}.html").is_file() and (run / "figures" / f"{fig}.json").is_file()


def _check_filtering(metrics, run):
    methods = {r["method"] for r in metrics["rows"]}
    assert {"majority", "q_goal", "q_baseline", "token_reward_goal", "token_reward_baseline", "random",
            "best_of_n_goal", "weighted_goal"} <= methods
    unfiltered = {r["accuracy"] for r in metrics["rows"] if r["method"] == "majority"}
    assert len(unfiltered) == 1  # every method sees the same samples
    for r in metrics["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["share_tokens_saved"] <= 1.0
        assert 0.0 <= r["share_pruned"] <= 1.0 and r["accuracy_unfiltered"] in unfiltered
        if r["method"] in ("majority", "best_of_n_goal", "weighted_goal"):
            assert r["share_tokens_saved"] == 0.0 and r["share_pruned"] == 0.0
        else:
            # a sample pruned at token t generated t + 1 tokens: never more than all of them
            assert r["tokens_generated"] <= r["tokens_total"]
    assert {f["set"] for f in metrics["frontier"]} == {"validation", "test"}
    assert {s["method"] for s in metrics["signals"]} == {"q_goal", "q_baseline", "token_reward_goal",
                                                         "token_reward_baseline"}
    online = {r["method"]: r for r in metrics["online"]}
    assert {"generate_all", "none", "q_goal", "random"} <= set(online)
    for m in ("q_goal", "q_baseline", "random"):
        # online pruning never generates more than generating everything, and prunes what offline pruned
        assert online[m]["policy_tokens"] <= online["none"]["policy_tokens"]
        assert online[m]["decisions_match_offline"] == 1.0
        assert online[m]["seconds"] > 0
    assert online["none"]["policy_tokens"] == online["generate_all"]["policy_tokens"]
    assert (run / "per_question.csv").is_file()
    for fig in ("frontier", "qvalue_traces", "online_cost"):
        assert (run / "figures" / f"{fig}.html").is_file() and (run / "figures" / f"{fig}.json").is_file()


SANITY = {"01_rm_training": _check_rm_training, "03_filtering": _check_filtering}
