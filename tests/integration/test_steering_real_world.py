"""Notebook 04 on real data (`SteeringParams.data`), end to end on CPU: a notebook-01 run on HH-RLHF-format dialogues
(local JSONL through the `hh_rlhf` adapter, prompts rendered with the tokenizer's chat template) over a tiny random
Llama whose vocabulary merges newlines into other tokens as a BPE one does ('\\n\\n', '.\\n'), then steering on
HelpSteer-format files (`helpsteer` adapter): prompts from the validation file, prototypes from responses rated
high or low in the train file, steps ending at the first line, the `rm_proxy` judge. Nothing is loaded from a hub.

The helpers at the top build that world; tests/notebooks/test_notebooks.py reuses them for the headless notebook
run. Here the notebook's steps are called in its order (`run_in_notebook_order`), without a kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.scale, pytest.mark.slow]

CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
NEWLINE_TOKENS = ("\n\n", ".\n", "\n")


def chat_tokenizer():
    """Characters of printable ASCII, plus three tokens that contain a newline (as a BPE vocabulary merges them),
    BOS/EOS/pad/unk and a chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + list(NEWLINE_TOKENS) + [chr(c) for c in range(32, 127)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n\n|\.\n|\n|."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", padding_side="right", add_bos_token=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_chat_backbone(path: Path) -> Path:
    """A random 2-layer Llama over `chat_tokenizer()`, saved as a standard checkpoint (the 'policy')."""
    import torch
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    tok = chat_tokenizer()
    torch.manual_seed(0)
    cfg = llama_config(PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                    max_position_embeddings=512), tok)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def hh_rows(n: int) -> list[dict]:
    """HH-RLHF-format dialogues: a shared prefix, then a better and a worse final assistant turn."""
    rows = []
    for i in range(n):
        prefix = f"\n\nHuman: How do I fix bug {i}?\n\nAssistant: Which one?\n\nHuman: Number {i}."
        rows.append({"chosen": prefix + f"\n\nAssistant: Check line {i}.\nThen rerun the tests.",
                     "rejected": prefix + "\n\nAssistant: No idea."})
    return rows


def helpsteer_rows(n: int, offset: int = 0) -> list[dict]:
    """HelpSteer-format rows: two responses per prompt, a long careful one (rated high) and a short one (rated low);
    every fifth response rated 2 (in neither set)."""
    rows = []
    for i in range(offset, offset + n):
        prompt = f"Explain topic {i} briefly."
        for good in (True, False):
            mid = i % 5 == 0 and good
            r = 2 if mid else (4 if good else 1)
            text = (f"Topic {i} matters.\nFirst, it is simple.\n\nSecond, it helps." if good else f"Topic {i}?\nNo.")
            rows.append({"prompt": prompt, "response": text, "helpfulness": r, "correctness": r, "coherence": 3,
                         "complexity": 4 if good else 0, "verbosity": 2})
    return rows


def build_real_world(tmp: Path) -> dict:
    """A finished real-data notebook-01 run (hh_rlhf pairs from local files, chat template, one reward-model seed,
    baseline and goal_conditioned) and a HelpSteer-format folder (train.jsonl, validation.jsonl). Returns
    {"rm_run": run folder, "helpsteer": folder, "backbone": checkpoint folder}."""
    from gcrm_kit.params import RMTrainingParams, from_dict
    from gcrm_kit.rm_training import build_world, train_and_evaluate
    from gcrm_kit.runs import start_run

    backbone = tiny_chat_backbone(tmp / "backbone")
    p = from_dict(RMTrainingParams, {
        "output_root": str(tmp / "out"), "params_name": "real_hh_test", "rm_seeds": [0],
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 100, "max_length": 512},
        "model": {"backbone": str(backbone)},
        "data": {"kind": "real",
                 "train": {"adapter": "hh_rlhf", "source": _jsonl(tmp / "hh" / "train.jsonl", hh_rows(8))},
                 "test": {"adapter": "hh_rlhf", "source": _jsonl(tmp / "hh" / "test.jsonl", hh_rows(4))}}})
    run = start_run(p)
    train_and_evaluate(p, run, build_world(p, run))
    hs = tmp / "helpsteer"
    _jsonl(hs / "train.jsonl", helpsteer_rows(10))
    _jsonl(hs / "validation.jsonl", helpsteer_rows(6, offset=100))
    return {"rm_run": run.dir, "helpsteer": hs, "backbone": backbone}


def steering_params(world: dict, output_root: Path, **overrides) -> dict:
    """Real-data SteeringParams (as a mapping) on `world`: the paper's step (first line, `contains` newline) and
    prototypes/targets of params/04_steering/paper.yaml, a tiny beam and few prompts."""
    hs = world["helpsteer"]
    return {"params_name": "real", "output_root": str(output_root), "rm_run": str(world["rm_run"]),
            "n_prompts": 3, "prototype_examples": 64, "exact_oracle": False, "judge": "rm_proxy",
            "device": "cpu", "sequence_batch_size": 8, "batch_size": 8,
            "data": {"prompts": {"adapter": "helpsteer", "source": str(hs), "split": "validation"},
                     "labelled": {"adapter": "helpsteer", "source": str(hs), "split": "train"},
                     "heldout_examples": 20},
            "prototypes": [{"name": "helpfulness_high", "attribute": "helpfulness", "value": True},
                           {"name": "helpfulness_low", "attribute": "helpfulness", "value": False},
                           {"name": "complexity_high", "attribute": "complexity", "value": True},
                           {"name": "complexity_low", "attribute": "complexity", "value": False}],
            "targets": [{"name": "helpfulness", "weights": {"helpfulness_high": 1.0}, "aim": "proxy_helpfulness"},
                        {"name": "complexity", "weights": {"complexity_high": 1.0}, "aim": "proxy_complexity"}],
            "beam": {"n_candidates": 2, "beam_size": 2, "max_step_tokens": 8, "max_steps": 3, "temperature": 0.2,
                     "step_end": "\n", "step_end_match": "contains"},
            **overrides}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_real_world(tmp_path_factory.mktemp("steering_real"))


def check_real_steering_run(metrics: dict, run: Path) -> None:
    """What a real-data run of notebook 04 must leave: rows of every method but the toy oracle, proxies in [0, 1]
    labelled as such, the gains, the cache check, prototypes with their rating provenance, the figures."""
    import yaml

    params = yaml.safe_load((run / "params.resolved.yaml").read_text())
    rms, targets = params["reward_models"], [t["name"] for t in params["targets"]]
    assert metrics["kind"] == "real" and "PROXIES" in metrics["judge"]["note"]
    methods = {(r["method"], r["reward_model"], r["target"]) for r in metrics["rows"]}
    expected = {("plain", "", ""), ("beam_policy_only", "", "")} | {("best_of_n", m, "") for m in rms}
    expected |= {(k, m, t) for k in ("guided", "best_of_n_goal") for m in rms for t in targets}
    assert methods == expected and len(metrics["rows"]) == len(expected) * len(metrics["seeds"])
    for r in metrics["rows"]:
        assert {"rate_proxy_reward", "rate_proxy_helpfulness", "rate_proxy_complexity"} <= set(r)
        assert 0.0 <= r["rate_proxy_helpfulness"] <= 1.0 and 0.0 <= r["rate_proxy_complexity"] <= 1.0
        assert (r["rm_tokens"] > 0) == (r["method"] in ("guided", "best_of_n", "best_of_n_goal"))
    assert len(metrics["gains"]) == 4 * len(rms) * len(targets)
    cache = metrics["cache_check"]
    assert cache["same_responses"] and cache["max_abs_score_diff"] < 1e-4
    assert cache["rm_tokens_cached"] < cache["rm_tokens_full"]
    labels = metrics["prototype_labels"]
    for name in rms:
        d = run / "prototypes" / f"{name}_seed{metrics['seeds'][0]}"
        for proto in params["prototypes"]:
            prov = json.loads((d / f"{proto['name']}.json").read_text())
            assert prov["count"] == labels[proto["name"]]["count"] > 0
            assert f">= {params['data']['rating_high']}" in prov["data"] and "ratings" in prov["judge"]
    for diag in metrics["prototype_diagnostics"].values():
        for t in targets:
            assert diag[t]["n_responses"] > 0 and 0.0 <= diag[t]["final_auroc"] <= 1.0
    for fig in ("steering_rates", "steering_compute", "steering_gains"):
        assert (run / "figures" / f"{fig}.html").is_file()


def run_in_notebook_order(p) -> Path:
    """Notebook 04's cells as library calls, in the notebook's order (its start cell, section 1's labels, overview,
    prototypes and diagnostics of the first reward model, section 2's worked example, section 3's cache check,
    section 4's comparison, metrics, figures and tables). Returns the run folder."""
    from gcrm_kit import steering as S
    from gcrm_kit.runs import start_run

    run = start_run(p)
    setup = S.prepare(p, run)
    labels = S.label_table(p, setup)
    S.attribute_overview(p, setup, labels)
    name, rm_seed = setup.reward_models[0], setup.seeds[0]
    model, rm_tokenizer = setup.load_reward_model(name, rm_seed)
    goals = S.goal_terms(p, S.build_prototypes(p, setup, model, rm_tokenizer, name, rm_seed, labels=labels))
    S.diagnostics_table({f"{name}_seed{rm_seed}": S.prototype_diagnostics(p, setup, model, rm_tokenizer, goals)})
    del model
    S.worked_example(p, setup, prompt_index=0)
    cache_check = S.check_cache(p, setup)
    result = S.compare_methods(p, run, setup)
    result.cache_check = cache_check
    S.write_metrics(p, run, setup, result, S.label_counts(p, setup, labels))
    S.save_figures(run, result, [t.aim for t in p.targets])
    S.results_table(result, S.reported_attributes(p, result))
    S.gains_table(result)
    S.diagnostics_table(result.diagnostics)
    return run.dir


def test_real_data_steering_end_to_end(world, tmp_path):
    from gcrm_kit.params import SteeringParams, from_dict

    raw = steering_params(world, tmp_path)
    p = from_dict(SteeringParams, raw)
    run = run_in_notebook_order(p)
    metrics = json.loads((run / "metrics.json").read_text())
    check_real_steering_run(metrics, run)
    setup = json.loads((run / "setup.json").read_text())
    assert setup["kind"] == "real" and setup["chat_template"] == "auto" and setup["n_labelled"] == 20
    # prompts: the validation file's (topics 100-105), each once, rendered with the tokenizer's chat template
    prompts = json.loads((run / "prompts.json").read_text())
    assert len(prompts) == len(set(prompts)) == 3
    for q in prompts:
        assert q.startswith("<|user|>\nExplain topic 10") and q.endswith("<|assistant|>\n")
    # counts from the files: train has 8 responses rated >= 4 on helpfulness (2 of 10 rated 2), 10 rated 1
    labels = metrics["prototype_labels"]
    assert (labels["helpfulness_high"]["count"], labels["helpfulness_low"]["count"]) == (8, 10)
    diag = metrics["prototype_diagnostics"]["goal_conditioned_seed0"]
    assert diag["helpfulness"]["n_responses"] == 10 and diag["complexity"]["n_responses"] == 12
    assert 0.0 <= diag["helpfulness"]["steps_auroc"] <= 1.0  # newline-ending tokens inside rated responses
    # best-of-N's picks are scored by the judge with the same proxies as every other method
    responses = json.loads((run / "responses.json").read_text())["responses"]
    assert set(responses) >= {"plain", "beam_policy_only", "guided/goal_conditioned/helpfulness",
                              "best_of_n/baseline", "best_of_n_goal/baseline/complexity"}


def test_real_data_steering_needs_its_data_and_a_real_judge(world, tmp_path):
    import shutil

    import yaml

    from gcrm_kit import steering as S
    from gcrm_kit.params import ParamsError, SteeringParams, from_dict
    from gcrm_kit.runs import start_run

    raw = steering_params(world, tmp_path)
    toy_data = {k: v for k, v in raw.items() if k not in ("data", "prototypes", "targets", "judge")}
    p = from_dict(SteeringParams, toy_data)  # a toy params file on a real-data run
    with pytest.raises(ValueError, match="real-data notebook-01 run: set data.prompts and data.labelled"):
        S.prepare(p, start_run(p))
    with pytest.raises(ParamsError, match="exact"):
        from_dict(SteeringParams, {**raw, "judge": "exact"})
    # the proxy judge scores proxies, not helpfulness: a target aiming at `helpfulness` needs a real judge
    p = from_dict(SteeringParams, {**raw, "targets": [{"name": "h", "weights": {"helpfulness_high": 1.0},
                                                       "aim": "helpfulness"}]})
    setup = S.prepare(p, start_run(p))
    with pytest.raises(KeyError, match="no attribute 'helpfulness' to aim at"):
        S.label_table(p, setup)
    # real data on a toy-world run is refused before anything loads
    toy_run = tmp_path / "toy_run"
    shutil.copytree(world["rm_run"], toy_run, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint-*"))
    resolved = yaml.safe_load((toy_run / "params.resolved.yaml").read_text())
    resolved["data"], resolved["model"]["backbone"] = {"kind": "toy"}, ""
    (toy_run / "params.resolved.yaml").write_text(yaml.safe_dump(resolved))
    p = from_dict(SteeringParams, {**raw, "rm_run": str(toy_run)})
    with pytest.raises(ValueError, match="is a toy-world run"):
        S.prepare(p, start_run(p))
