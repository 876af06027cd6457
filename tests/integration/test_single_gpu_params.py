"""The single-GPU chain on CPU: params/01_rm_training/single_gpu.yaml (4-bit backbone + LoRA) run headless through
notebook 01, then notebooks 02 and 03 with their single_gpu.yaml on that run; and single_gpu_hh.yaml through
notebook 01 followed by notebook 04 with its single_gpu.yaml.

Each params file is loaded as shipped and only what cannot run on a CPU in seconds is overridden (the backbone: a
tiny random Llama; the data: small local files in the formats the files name; float32 in place of bf16; tiny
batch, step and sample counts). Everything else (LoRA, 4-bit loading, objectives, seeds, `device: auto`, the
notebooks' other settings) is the file's, and the test checks that the executed run's resolved params say so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.scale, pytest.mark.slow]
pytest.importorskip("bitsandbytes")

ROOT = Path(__file__).resolve().parents[2]
LLAMA3_PAD = "<|reserved_special_token_0|>"


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _steering_helpers():
    """tests/integration/test_steering_real_world.py's builders (chat tokenizer, HH-RLHF and HelpSteer rows, the
    check of a real-data steering run), loaded from its file."""
    path = ROOT / "tests" / "integration" / "test_steering_real_world.py"
    spec = importlib.util.spec_from_file_location("steering_real_world_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped(notebook: str, name: str) -> dict:
    """params/<notebook>/<name>.yaml as the kit reads it (every field, defaults filled in), as plain values."""
    from gcrm_kit.params import load_params, to_dict

    return to_dict(load_params(notebook, ROOT / "params" / notebook / f"{name}.yaml"))


def _leaves(d: dict, prefix: str = "") -> dict:
    """{"a.b.c": value} for every non-mapping value of a nested mapping (lists are values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_leaves(v, key + ".") if isinstance(v, dict) and v else {key: v})
    return out


def _merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides`' leaves put in (nested mappings merged, everything else replaced)."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) and v else v
    return out


def _run(notebook: str, name: str, tmp: Path, overrides: dict) -> tuple[Path, dict]:
    """Run `notebook` headless (gcrm_kit.notebooks.run_notebook, papermill) on params/<notebook>/<name>.yaml with
    `overrides` put in, written as <tmp>/<name>.yaml. Checks that the executed run's resolved params equal the
    shipped file everywhere the overrides did not touch. Returns (run folder, resolved params)."""
    from gcrm_kit.notebooks import run_notebook

    shipped = _shipped(notebook, name)
    params = tmp / notebook / f"{name}.yaml"
    params.parent.mkdir(parents=True)
    params.write_text(yaml.safe_dump(_merge(shipped, {"output_root": str(tmp / "out"), **overrides})))
    run = run_notebook(notebook, str(params), log_output=False)
    resolved = yaml.safe_load((run / "params.resolved.yaml").read_text())
    touched = set(_leaves({"output_root": "", "run_dir": "", **overrides}))
    got, want = _leaves(resolved), _leaves(shipped)
    assert got.keys() == want.keys()
    untouched = {k for k in want if not any(k == t or k.startswith(t + ".") for t in touched)}
    assert {k: got[k] for k in untouched} == {k: want[k] for k in untouched}
    assert resolved["params_name"] == name
    return run, resolved


def _check_reward_models(run: Path, names: set[str]) -> None:
    """Every reward model of a notebook-01 run trained as 4-bit + LoRA: its adapter saved, its merged checkpoint
    checked against the trained model's rewards."""
    specs = sorted(run.rglob("rm_spec.json"))
    assert {json.loads(s.read_text())["name"] for s in specs} == names
    for s in specs:
        spec, out = json.loads(s.read_text()), s.parent
        assert spec["quant"]["load_in_4bit"] and spec["lora"]["enabled"]
        assert (out / "adapter" / "adapter_config.json").is_file() and (out / "DONE").is_file()
        assert json.loads((out / "checkpoint_check.json").read_text())["ok"]


def _on_cpu(backbone: Path) -> dict:
    """The model overrides: a tiny local backbone, and float32 in place of the GPU's bf16 (bitsandbytes' CPU 4-bit
    path computes in float32, as tests/integration/test_lora_4bit.py runs it); one accumulation step."""
    return {"model": {"backbone": str(backbone), "dtype": "float32"}, "quant": {"compute_dtype": "float32"},
            "distributed": {"gradient_accumulation_steps": 1}}


def _policy64(path: Path, tokenizer) -> Path:
    """A random 2-layer Llama over `tokenizer` whose widths are multiples of bitsandbytes' 4-bit block size (64;
    the 32-wide tiny_policy_dir cannot be loaded in 4 bits), saved as a standard checkpoint."""
    import torch
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    torch.manual_seed(0)
    cfg = llama_config(PolicyParams(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                    max_position_embeddings=512), tokenizer)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def math_rm_run(tokenizer, tmp_path_factory) -> Path:
    """Notebook 01 on params/01_rm_training/single_gpu.yaml: OpenMathInstruct-1-format pairs, a GSM8K set of
    labelled solutions carrying reference answers and a MATH-format benchmark, all local."""
    tmp = tmp_path_factory.mktemp("single_gpu")
    solutions = [row for i in range(24) for row in (
        {"question": f"{i % 10}+{i // 10}?", "generated_solution": f"{i % 10}+{i // 10}={i % 10 + i // 10}",
         "is_correct": True, "predicted_answer": str(i % 10 + i // 10), "expected_answer": str(i % 10 + i // 10)},
        {"question": f"{i % 10}+{i // 10}?", "generated_solution": f"{i % 10}+{i // 10}={i % 10 + i // 10 + 1}",
         "is_correct": False, "predicted_answer": str(i % 10 + i // 10 + 1),
         "expected_answer": str(i % 10 + i // 10)})]
    labelled = [{"prompt": f"{i}+2?", "response": f"{i}+2={i + 2 + i % 2};A:{i + 2 + i % 2}",
                 "is_correct": i % 2 == 0, "answer": str(i + 2 + i % 2), "meta": {"reference": str(i + 2)}}
                for i in range(8)]
    problems = [{"problem": f"{i}+0?", "solution": f"{i}+0=\\boxed{{{i}}}"} for i in range(4)]
    # GSM8K through the `records` adapter (labelled solutions, references in meta): a random backbone answering
    # GSM8K questions would get every one wrong, and notebook 02 needs both classes (03 needs the references)
    overrides = {
        **_on_cpu(_policy64(tmp / "backbone", tokenizer)),
        "training": {"logging_steps": 1},
        "data": {"max_new_tokens": 8,
                 "train": {"source": _jsonl(tmp / "data" / "openmathinstruct.jsonl", solutions)},
                 "eval_sets": {"gsm8k": {"adapter": "records", "config": "",
                                         "source": _jsonl(tmp / "data" / "gsm8k.jsonl", labelled)},
                               "math": {"source": _jsonl(tmp / "data" / "math.jsonl", problems)}}}}
    run, resolved = _run("01_rm_training", "single_gpu", tmp, overrides)
    assert resolved["lora"]["enabled"] and resolved["quant"]["load_in_4bit"] and resolved["device"] == "auto"
    assert resolved["data"]["train"]["adapter"] == "openmathinstruct"
    assert resolved["data"]["eval_sets"]["math"]["adapter"] == "math"
    return run


def test_single_gpu_rm_training(math_rm_run):
    metrics = json.loads((math_rm_run / "metrics.json").read_text())
    assert {r["reward_model"] for r in metrics["rows"]} == {"baseline", "goal_conditioned"}
    for row in metrics["rows"]:
        assert row["rm_seed"] == 42 and row["n_train_pairs"] == 22 and 0 <= row["pairwise_accuracy"] <= 1
        assert set(row["auroc"]) == {"gsm8k", "math"} and 0 <= row["auroc"]["gsm8k"] <= 1
    _check_reward_models(math_rm_run, {"baseline", "goal_conditioned"})


def test_single_gpu_representation(math_rm_run, tmp_path):
    run, resolved = _run("02_representation_analysis", "single_gpu", tmp_path, {
        "rm_run": str(math_rm_run), "n_bootstrap": 20, "n_examples": 2, "projection": {"n_sequences": 8}})
    assert resolved["split"] == "gsm8k" and resolved["n_samples"] == 0 and resolved["device"] == "auto"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["inputs"]["n_samples"] == 8  # every labelled GSM8K solution
    assert set(metrics["partial_auroc"]) == {"baseline", "goal_conditioned"}
    for by in metrics["partial_auroc"].values():
        assert all(0.0 <= e["mean"] <= 1.0 for points in by.values() for e in points.values())


def test_single_gpu_filtering(math_rm_run, tmp_path):
    from gcrm_kit.data import GenerationRecord, load_jsonl

    run, resolved = _run("03_filtering", "single_gpu", tmp_path, {
        "rm_run": str(math_rm_run), "n_validation_questions": 2, "n_test_questions": 2, "samples_per_question": 3,
        "max_new_tokens": 8, "random_repeats": 2})
    assert resolved["split"] == "gsm8k" and not resolved["online"]["enabled"] and resolved["device"] == "auto"
    test = load_jsonl(run / "data" / "samples_test.jsonl", GenerationRecord)
    val = load_jsonl(run / "data" / "samples_validation.jsonl", GenerationRecord)
    assert len(test) == len(val) == 2 * 3 and not {r.prompt for r in test} & {r.prompt for r in val}
    assert all(r.meta["reference"] == str(int(r.prompt.split("+")[0]) + 2) for r in test + val)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["online"] == [] and metrics["rows"]


def test_single_gpu_steering(tmp_path):
    """single_gpu_hh.yaml through notebook 01 (HH-RLHF-format dialogues), then notebook 04's single_gpu.yaml on
    that run (HelpSteer-format prompts and rated responses)."""
    helpers = _steering_helpers()
    assert _shipped("04_steering", "single_gpu")["rm_params"] == "single_gpu_hh"
    tok = helpers.chat_tokenizer()
    tok.add_tokens([LLAMA3_PAD], special_tokens=True)  # single_gpu_hh.yaml pads with Llama 3's reserved token
    backbone = _policy64(tmp_path / "backbone", tok)
    hh = tmp_path / "data" / "hh"
    rm_run, resolved = _run("01_rm_training", "single_gpu_hh", tmp_path, {
        **_on_cpu(backbone),
        "training": {"logging_steps": 1},
        "data": {"train": {"source": _jsonl(hh / "train.jsonl", helpers.hh_rows(8))},
                 "test": {"source": _jsonl(hh / "test.jsonl", helpers.hh_rows(4))}}})
    assert resolved["model"]["pad_token"] == LLAMA3_PAD and resolved["data"]["train"]["adapter"] == "hh_rlhf"
    _check_reward_models(rm_run, {"baseline", "goal_conditioned"})

    hs = tmp_path / "data" / "helpsteer"
    _jsonl(hs / "train.jsonl", helpers.helpsteer_rows(10))
    _jsonl(hs / "validation.jsonl", helpers.helpsteer_rows(6, offset=100))
    run, resolved = _run("04_steering", "single_gpu", tmp_path, {
        "rm_run": str(rm_run), "n_prompts": 3,
        "data": {"prompts": {"source": str(hs)}, "labelled": {"source": str(hs)}},
        "beam": {"beam_size": 2, "max_step_tokens": 8, "max_steps": 3}})
    assert resolved["judge"] == "rm_proxy" and resolved["rm_seeds"] == [42] and resolved["device"] == "auto"
    assert resolved["data"]["prompts"]["split"] == "validation" and resolved["data"]["labelled"]["split"] == "train"
    metrics = json.loads((run / "metrics.json").read_text())
    helpers.check_real_steering_run(metrics, run)
    assert metrics["seeds"] == [42]
