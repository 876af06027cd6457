"""Every notebook: committed without outputs, parameters cell equal to its params dataclass, and a papermill
smoke run with its smoke.yaml whose run folder holds a sane metrics.json. Notebooks are found by glob."""

import ast
import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from gcrm_kit.device import resolve_device
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


def _check_world_bounds(bounds: dict, sets: list[str]):
    """metrics["world_bounds"] ({set: WorldBounds.as_dict}): one entry per set, shares in [0, 1], AUROCs in [0, 1]
    or null (one class missing), the first error placed inside the response, tokens counted."""
    assert sorted(bounds) == sorted(sets)
    for b in bounds.values():
        assert b["n_samples"] > 0 and 0 < b["n_questions"] <= b["n_samples"] and b["tokens_generated"] > 0
        shares = [b["share_correct"], b["vote_accuracy"], b["vote_oracle_saving"], b["first_error_oracle_saving"],
                  *b["share_correct_by_split"].values()]
        assert all(0.0 <= v <= 1.0 for v in shares), shares
        assert set(b["confidence_auroc"]) == {"mean_logprob", "min_logprob", "lowest_group_confidence",
                                              "tail_confidence"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in b["confidence_auroc"].values())
        fe = b["first_error"]
        assert sum(fe["histogram"]) == fe["n_located"]
        assert fe["mean"] is None or 0.0 <= fe["mean"] < 1.0


def _check_rm_training(metrics, run):
    import yaml

    from gcrm_kit.params import RewardModelSpec, from_dict
    from gcrm_kit.rm_runs import role_of

    params = yaml.safe_load((run / "params.resolved.yaml").read_text())
    names = [m["name"] for m in params["reward_models"]]
    assert {r["reward_model"] for r in metrics["rows"]} == set(names)
    assert len(metrics["rows"]) == len(names) * len(params["rm_seeds"]) * (1 + len(params["train_pair_counts"]))
    assert [e["reward_model"] for e in metrics["summary"]] == names
    specs = {m["name"]: m for m in params["reward_models"]}
    for row in metrics["rows"]:
        assert 0.0 <= row["pairwise_accuracy"] <= 1.0
        spec = specs[row["reward_model"]]  # each row says what its model is: its role and weights
        assert row["objective"]["role"] == role_of(from_dict(RewardModelSpec, spec))
        assert (row["objective"]["contrastive_weight"], row["objective"]["grm_weight"]) == \
            (spec["contrastive_weight"], spec["grm_weight"])
        for split, v in row["auroc"].items():
            assert v != v or 0.0 <= v <= 1.0  # NaN only when a split has one class
        if spec.get("kind") == "process":  # a PRM's last step is read at the EOS: no EOS-free reading
            assert set(row["auroc_last_step"]) == set(row["auroc"]) and "auroc_last_token" not in row
            continue
        assert set(row["auroc_last_token"]) == set(row["auroc"])  # the reward read without the EOS, every split
        for split, v in row["auroc_last_token"].items():
            assert v != v or 0.0 <= v <= 1.0
            assert (v != v) == (row["auroc"][split] != row["auroc"][split])  # same records: defined alike
    for e in metrics["summary"]:
        if specs[e["reward_model"]].get("kind") != "process":
            assert set(e["auroc_last_token"]) == set(e["auroc"])
    assert "(last token)" in (run / "01_rm_training.ipynb").read_text()  # the notebook shows the second table
    for split, acc in metrics["policy_accuracy"].items():
        assert 0.0 <= acc <= 1.0
    _check_world_bounds(metrics["world_bounds"], params["evaluation"]["splits"])
    for b in metrics["world_bounds"].values():  # one sample per question: the vote is that sample
        assert b["n_questions"] == b["n_samples"] and b["vote_oracle_saving"] == 0.0
        assert abs(b["vote_accuracy"] - b["share_correct"]) < 1e-12
    for name in names:
        d = run / "reward_models" / f"{name}_seed{params['rm_seeds'][0]}"
        if specs[name].get("kind") == "process":  # a token-classification checkpoint, checked against training
            config = json.loads((d / "config.json").read_text())
            assert config["architectures"] == ["LlamaForTokenClassification"] and len(config["id2label"]) == 2
            assert json.loads((d / "checkpoint_check.json").read_text())["ok"]
            continue
        assert (d / "config.json").is_file() and (d / "prototypes" / "correct.pt").is_file()
    if any(m.get("kind") == "process" for m in params["reward_models"]):  # what labelling the steps cost
        cost = metrics["process_labels"]
        assert cost["source"] == params["process"]["labels"] and cost["n_steps"] >= cost["n_solutions"] > 0
        if cost["source"] == "monte_carlo":
            assert cost["rollouts"] > 0 and cost["policy_tokens"] >= cost["rollouts"]
    if params["train_pair_counts"]:
        assert metrics["data_size_curve"] and (run / "figures" / "auroc_vs_pairs.html").is_file()
    for fig in ("training_curves", "auroc_by_split"):
        assert (run / "figures" / f"{fig}.html").is_file() and (run / "figures" / f"{fig}.json").is_file()
    if params["evaluation"]["best_of_n"]:
        bon = metrics["best_of_n"]
        ns = sorted(set(params["evaluation"]["best_of_n"]))
        assert len(bon["rows"]) == len(metrics["rows"]) * len(ns) and bon["n_questions"] > 0
        assert all(0.0 <= r["accuracy"] <= 1.0 and r["objective"]["role"] for r in bon["rows"])
        for ref in bon["references"]:  # the oracle bounds every pick; at n = 1 every pick is a random one
            assert all(r["accuracy"] <= ref["oracle"] + 1e-9 for r in bon["rows"] if r["n"] == ref["n"])
        one = [r["accuracy"] for r in bon["rows"] if r["n"] == 1]
        assert one and all(abs(a - bon["references"][0]["random"]) < 1e-9 for a in one)
        assert (run / "figures" / "best_of_n.html").is_file() and (run / "best_of_n.json").is_file()


def _check_representation(metrics, run):
    def ok(v):
        return v != v or 0.0 <= v <= 1.0  # NaN only when the smoke samples have one class

    inputs = metrics["inputs"]
    assert inputs["n_samples"] > 0 and set(inputs["model_dirs"]) >= {"baseline", "goal_conditioned"}
    assert inputs["roles"]["baseline"] == "baseline" and inputs["roles"]["goal_conditioned"] == "goal_conditioned"
    assert metrics["device"] == str(resolve_device("auto"))  # where the reward models ran: the device rule's choice
    assert set(metrics["partial_auroc"]) == set(inputs["model_dirs"])
    for rm, by in metrics["partial_auroc"].items():
        assert set(by) >= {"correct", "incorrect", "correct_mean", "correct_random", "head"}
        for scorer, points in by.items():
            assert len(points) == 11 and all(ok(e["mean"]) for e in points.values())
    for rm, by in metrics["error_localisation"].items():
        for scorer, e in by.items():
            assert ok(e["hit_rate"]) and ok(e["chance"])
    for rm, by in metrics["reward_correlations"].items():
        for scorer, e in by.items():
            assert all(v != v or -1.0 <= v <= 1.0 for v in e["pearson"]["mean"])
    # the prototypes notebook 01 saved equal the ones rebuilt here from the same pairs
    assert all(d < 1e-4 for d in metrics["prototype_check_max_abs_diff"].values())
    for fig in ("partial_auroc", "mean_curves", "example_curves", "error_localisation", "reward_correlations",
                "projection_pca", "projection_tsne", "token_view_0"):
        assert (run / "figures" / f"{fig}.html").is_file(), fig
    protos = run / "reward_models" / "goal_conditioned_seed0" / "prototypes"
    assert (protos / "correct_random.pt").is_file() and (protos / "correct_random.json").is_file()
    # every per-step reader scored by ProcessBench's metric, the process reward model among them
    pb = metrics["processbench"]
    assert pb["n_validation"] + pb["n_test"] == inputs["n_samples"]
    kinds = {e["kind"] for e in pb["readers"].values()}
    assert kinds >= {"q", "head", "policy"}
    for e in pb["readers"].values():
        assert all(ok(e[k]["mean"]) for k in ("f1", "acc_erroneous", "acc_correct"))
    assert (run / "figures" / "processbench.html").is_file()
    if inputs.get("process_reward_models"):  # the smoke run of notebook 01 trains one
        assert "prm" in kinds and set(metrics["prm_partial_auroc"]) == set(inputs["process_reward_models"])
        assert all(ok(e["mean"]) for by in metrics["prm_partial_auroc"].values() for e in by.values())
        assert set(metrics["prm_localisation"]) == set(inputs["process_reward_models"])


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
    has_prm = _prm_of_rm_run(metrics["rm_run"]) is not None
    assert {s["method"] for s in metrics["signals"]} == {"q_goal", "q_baseline", "token_reward_goal",
                                                         "token_reward_baseline"} | ({"prm"} if has_prm else set())
    if has_prm:  # the process reward model prunes on the same samples, its threshold chosen on validation
        assert metrics["prm"] == _prm_of_rm_run(metrics["rm_run"]) and metrics["left_out"] == {}
        (prm,) = [r for r in metrics["rows"] if r["method"] == "prm"]
        swept = [f for f in metrics["frontier"] if f["method"] == "prm"]
        assert {f["set"] for f in swept} == {"validation", "test"} and prm["quantile"] in {f["quantile"] for f in swept}
    else:
        assert metrics["prm"] is None and metrics["left_out"]["prm"]
    online = {r["method"]: r for r in metrics["online"]}
    assert {"generate_all", "none", "q_goal", "random"} <= set(online)
    # smoke.yaml's online.methods leaves the token-reward methods out of the online runs, not out of the notebook
    assert not {"token_reward_goal", "token_reward_baseline"} & set(online)
    assert {"token_reward_goal", "token_reward_baseline"} <= {r["method"] for r in metrics["rows"]}
    for m in ("q_goal", "q_baseline", "random"):
        # online pruning never generates more than generating everything, and prunes what offline pruned
        assert online[m]["policy_tokens"] <= online["none"]["policy_tokens"]
        assert online[m]["decisions_match_offline"] == 1.0
        assert online[m]["seconds"] > 0
    assert online["none"]["policy_tokens"] == online["generate_all"]["policy_tokens"]
    assert (run / "per_question.csv").is_file()
    fr = metrics["compute_frontier"]
    chosen = {r["method"] for r in fr["chosen"]}
    assert {"majority", "q_goal", "deepconf_online", "speculative_goal", "esc", "adaptive_consistency",
            "probe"} | ({"prm"} if has_prm else set()) <= chosen
    assert ("process" in fr["cost"]["scorer_params"]) == has_prm and ("prm" in fr["skipped"]) != has_prm
    for r in fr["chosen"]:
        if r["method"] == "prm":  # it pays for every token it read, the prompt included
            assert r["scorer_flops"] > 0 and r["scorer_tokens"] >= r["policy_tokens"]
    for r in fr["chosen"]:
        # an operating point never costs less than nothing, and the unfiltered vote is the reference
        assert 0.0 <= r["accuracy"] <= 1.0 and r["share_compute_saved"] <= 1.0 and r["flops"] > 0
        if r["method"] == "majority":
            assert r["share_compute_saved"] == 0.0 and r["accuracy"] == r["accuracy_unfiltered"]
    assert {o["method"] for o in fr["oracles"]} == {"oracle_first_error", "oracle_vote"}
    assert set(fr["target"]["methods_meeting_target"]) <= chosen
    assert (run / "figures" / "compute_frontier.json").is_file()
    drawn = {r["method"]: r for r in fr["online"]}
    assert {"none", "esc", "adaptive_consistency", "deepconf_online"} <= set(drawn)
    for r in drawn.values():
        # drawing on demand regenerates the recorded samples (DeepConf's up to their stop), never more tokens than
        # all of them, in the continuous batch of the cached loop
        assert r["responses_match_offline"] == 1.0 and r["policy_tokens"] <= drawn["none"]["policy_tokens"]
        assert r["loop"] == "cached" and r["calls"] >= 1 and 1 <= r["steps"] <= drawn["none"]["policy_tokens"]
    by_seed = {(r["method"], r["rm_seed"]): r for r in fr["online"]}
    for r in fr["chosen"]:
        if (r["method"], r["rm_seed"]) in by_seed:  # its wall-clock saved is its own loop's
            assert r["share_seconds_saved"] == by_seed[(r["method"], r["rm_seed"])]["share_seconds_saved"]
    spread = {r["method"]: r for r in fr["order_spread"]}  # replayed over the smoke params' draw orders
    assert set(spread) == {"esc", "adaptive_consistency", "deepconf_online"}
    assert all(r["repeats"] == 5 and 1 <= r["samples_per_question"] <= 4 for r in spread.values())
    _check_world_bounds(metrics["world_bounds"], ["test"])
    test = metrics["world_bounds"]["test"]  # the samples the methods used
    assert (test["n_samples"], test["share_correct"]) == (metrics["samples"]["test"]["samples"],
                                                          metrics["samples"]["test"]["share_correct"])
    assert test["n_questions"] == metrics["samples"]["test"]["questions"] and test["vote_oracle_saving"] > 0.0
    for fig in ("frontier", "qvalue_traces", "online_cost"):
        assert (run / "figures" / f"{fig}.html").is_file() and (run / "figures" / f"{fig}.json").is_file()


def _prm_of_rm_run(rm_run: str) -> str | None:
    """The name of the process reward model of a notebook-01 run folder, None when it has none."""
    import yaml

    params = yaml.safe_load((Path(rm_run) / "params.resolved.yaml").read_text())
    return next((m["name"] for m in params["reward_models"] if m.get("kind") == "process"), None)


SANITY = {"01_rm_training": _check_rm_training, "02_representation_analysis": _check_representation,
          "03_filtering": _check_filtering}
def _check_steering(metrics, run):
    import yaml

    params = yaml.safe_load((run / "params.resolved.yaml").read_text())
    seeds, rms, targets = metrics["seeds"], params["reward_models"], [t["name"] for t in params["targets"]]
    methods = {(r["method"], r["reward_model"], r["target"]) for r in metrics["rows"]}
    expected = {("plain", "", ""), ("beam_policy_only", "", "")}
    expected |= {("guided", m, t) for m in rms for t in targets} | {("best_of_n", m, "") for m in rms}
    expected |= {("best_of_n_goal", m, t) for m in rms for t in targets}
    if params["exact_oracle"]:
        expected.add(("guided_oracle", "", "error_free"))
    prm = _prm_of_rm_run(metrics["rm_run"])
    if prm:  # the notebook-01 run's process reward model guides the same beam search
        expected.add(("guided_prm", prm, ""))
        assert metrics["left_out"] == {}
    else:
        assert "guided_prm" in metrics["left_out"]
    assert methods == expected
    assert len(metrics["rows"]) == len(expected) * len(seeds)
    for r in metrics["rows"]:
        assert all(0.0 <= v <= 1.0 for k, v in r.items() if k.startswith("rate_"))
        assert r["policy_tokens"] > 0 and r["seconds"] >= 0
        assert (r["rm_tokens"] > 0) == (r["method"] in ("guided", "best_of_n", "best_of_n_goal", "guided_prm"))
    assert all(n >= 1 for n in metrics["best_of_n"].values())
    cache = metrics["cache_check"]
    assert cache["same_responses"] and cache["max_abs_score_diff"] < 1e-4
    assert cache["rm_tokens_cached"] < cache["rm_tokens_full"]
    assert len(metrics["gains"]) == 4 * len(rms) * len(targets)
    for name in rms:
        for proto in params["prototypes"]:
            d = run / "prototypes" / f"{name}_seed{seeds[0]}"
            assert (d / f"{proto['name']}.pt").is_file() and (d / f"{proto['name']}.json").is_file()
    for fig in ("steering_rates", "steering_compute", "steering_gains"):
        assert (run / "figures" / f"{fig}.html").is_file() and (run / "figures" / f"{fig}.json").is_file()
    assert (run / "responses.json").is_file()


SANITY["04_steering"] = _check_steering


def _steering_real_world_helpers():
    """The real-data world of tests/integration/test_steering_real_world.py (a real-data notebook-01 run on a tiny
    chat model, HelpSteer-format files), loaded from its file so both tiers build the same one."""
    import importlib.util

    path = ROOT / "tests" / "integration" / "test_steering_real_world.py"
    spec = importlib.util.spec_from_file_location("steering_real_world_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.scale
def test_notebook_04_on_a_real_data_run(tmp_path, monkeypatch):
    """Notebook 04 headless (as `gcrm run` runs it) on a real-data notebook-01 run made from local files: HelpSteer
    prompts and rated prototypes, steps ending at the first line, the rm_proxy judge."""
    import yaml

    from gcrm_kit.cli import main

    helpers = _steering_real_world_helpers()
    world = helpers.build_real_world(tmp_path / "world")
    params = tmp_path / "real.yaml"
    params.write_text(yaml.safe_dump(helpers.steering_params(world, tmp_path)))
    monkeypatch.chdir(ROOT)
    assert main(["run", "04_steering", "--params", str(params), "--quiet"]) == 0
    (run,) = (tmp_path / "04_steering" / "real").iterdir()
    assert (run / "04_steering.ipynb").is_file()
    helpers.check_real_steering_run(json.loads((run / "metrics.json").read_text()), run)
