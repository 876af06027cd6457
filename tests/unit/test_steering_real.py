"""Real-data steering pieces, by hand on tiny random models (seconds): steps that end at the first line when a
vocabulary merges newlines into other tokens, rating labels from the HelpSteer adapter, the `rm_proxy` judge's
proxies recomputed by hand, judges whose factory takes the setup, the diagnostics read against ratings, the
real-data params checks, and params/04_steering/paper.yaml carrying the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gcrm_kit import steering as S
from gcrm_kit.params import AttributePrototype, BeamParams, ParamsError, SteeringParams, from_dict, load_params

ROOT = Path(__file__).resolve().parents[2]
NEWLINE_TOKENS = ("\n\n", ".\n", "\n")


def _tokenizer():
    """Characters, three tokens containing a newline (as BPE merges them), specials, and a chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *NEWLINE_TOKENS]
                                        + [chr(c) for c in range(32, 127)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n\n|\.\n|\n|."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", add_bos_token=False)
    tok.chat_template = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
    return tok


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    tok = _tokenizer()
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("chat_backbone")
    LlamaForCausalLM(llama_config(PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                               max_position_embeddings=256), tok)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def policy(backbone):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(backbone).eval(), AutoTokenizer.from_pretrained(backbone)


def _rows():
    """HelpSteer-format rows: per prompt a high-rated and a low-rated response, one rated in between."""
    rows = []
    for i in range(6):
        for good in (True, False):
            h = (2 if i == 0 else 4) if good else 1
            rows.append({"prompt": f"Explain {i}.", "response": f"Point {i}.\nMore.\n\nEnd." if good else f"{i}?\nNo.",
                         "helpfulness": h, "correctness": 3, "coherence": 3, "complexity": 4 if good else 0,
                         "verbosity": 2})
    return rows


def _records(rows=None):
    import datasets

    from gcrm_kit.params import DatasetSpec
    from gcrm_kit.real_data import helpsteer_records

    return helpsteer_records(datasets.Dataset.from_list(rows or _rows()), DatasetSpec("helpsteer", "local"))


PROTOTYPES = [{"name": "helpfulness_high", "attribute": "helpfulness", "value": True},
              {"name": "helpfulness_low", "attribute": "helpfulness", "value": False},
              {"name": "complexity_high", "attribute": "complexity", "value": True}]


def _params(**kw):
    return from_dict(SteeringParams, {
        "reward_models": ["m"], "judge": "rm_proxy", "exact_oracle": False, "device": "cpu",
        "data": {"prompts": {"adapter": "helpsteer", "source": "x", "split": "validation"},
                 "labelled": {"adapter": "helpsteer", "source": "x"}},
        "prototypes": PROTOTYPES,
        "targets": [{"name": "helpful", "weights": {"helpfulness_high": 1.0}, "aim": "proxy_helpfulness"}],
        "beam": {"step_end": "\n", "step_end_match": "contains", "beam_size": 2, "max_steps": 3,
                 "max_step_tokens": 6}, **kw})


@pytest.fixture
def real_setup(tmp_path, backbone):
    """A real-data SteeringSetup by hand: one reward model (seed 0), rated labelled and held-out responses."""
    from gcrm_kit.models import reward_model_from_policy

    model, tok = reward_model_from_policy(backbone, seed=0)
    with torch.no_grad():
        model.score.weight.normal_()
    d = tmp_path / "rm_seed0"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    recs = _records()
    labels = S.rating_labels(recs, 4, 1)
    pairs = [(r.prompt, r.response) for r in recs]
    p = _params()
    return S.SteeringSetup(tmp_path, None, backbone, {"m": [(0, d)]}, ["<|user|>\nHi.\n<|assistant|>\n"], pairs,
                           torch.device("cpu"), kind="real", labels=labels, heldout=pairs, heldout_labels=labels,
                           params=p, labelled_source="rated test rows")


def test_contains_ends_a_step_at_every_token_with_a_newline(policy):
    _, tok = policy
    stops = S.step_stop_ids(tok, "\n", "contains")
    nl = {tok.convert_tokens_to_ids(t) for t in NEWLINE_TOKENS}
    assert stops[0] == tok.eos_token_id and set(stops[1:]) == nl
    assert set(S.step_end_ids(tok, "\n", "contains")) == nl
    assert S.step_stop_ids(tok, "\n") == [tok.eos_token_id, tok.convert_tokens_to_ids("\n")]  # one token only
    assert S.step_stop_ids(tok, "\n", "contains") == stops  # kept per tokenizer, same answer
    with pytest.raises(ValueError, match="single token"):
        S.step_stop_ids(tok, "ab")
    with pytest.raises(ValueError, match="no token"):
        S.step_stop_ids(tok, "\t\t", "contains")
    with pytest.raises(ValueError, match="step_end_match"):
        S.step_stop_ids(tok, "\n", "regex")


def test_sampled_steps_are_first_lines(policy):
    pol, tok = policy
    stops = S.step_stop_ids(tok, "\n", "contains")
    prefix = [tok.bos_token_id] + tok("<|user|>\nHi.\n<|assistant|>\n", add_special_tokens=False)["input_ids"]
    torch.manual_seed(0)
    steps = S.sample_steps(pol, tok, [prefix], 60, 1.0, 12, "\n", stop_ids=stops)
    assert len(steps) == 60 and sum(st.complete for st in steps) >= 5
    for st in steps:
        cuts = [k for k, t in enumerate(st.ids) if t in stops]
        assert cuts == ([len(st.ids) - 1] if st.complete else []) and (st.complete or len(st.ids) == 12)
        assert st.ends_solution == (st.ids[-1] == tok.eos_token_id)
        text = tok.decode(st.ids)
        assert "\n" not in text.rstrip("\n")  # one line: newlines only at its end
    # the decoder uses the same steps: every candidate in its trace is one line
    trace = []
    S.guided_decode(pol, tok, ["<|user|>\nHi.\n<|assistant|>\n"], BeamParams(
        beam_size=2, max_steps=3, max_step_tokens=12, temperature=1.0, step_end="\n", step_end_match="contains"),
        seed=0, trace_prompts=(0,), trace=trace)
    assert trace and all("\n" not in c["step"].replace("</s>", "").rstrip("\n") for e in trace for c in e["candidates"])
    assert "⏎" in S.format_trace(trace, width=60) or not any("\n" in c["step"] for e in trace for c in e["candidates"])


def test_rating_labels_follow_the_helpsteer_sets():
    from gcrm_kit.real_data import helpsteer_sets

    recs = _records()
    labels = S.rating_labels(recs, 4, 1)
    sets = helpsteer_sets(recs, "helpfulness", 4, 1)
    assert [lab["helpfulness"] == 1.0 for lab in labels] == [any(r is x for x in sets["high"]) for r in recs]
    assert [lab["helpfulness"] == 0.0 for lab in labels] == [any(r is x for x in sets["low"]) for r in recs]
    assert labels[0]["helpfulness"] is None and labels[0]["correctness"] is None  # rated 2 and 3: neither set
    spec_hi, spec_lo = AttributePrototype("hi", "helpfulness", True), AttributePrototype("lo", "helpfulness", False)
    assert [S.in_set(lab, spec_hi) for lab in labels[:4]] == [False, False, True, False]
    assert [S.in_set(lab, spec_lo) for lab in labels[:4]] == [False, True, False, True]
    # rates leave the in-between ratings out
    rates = S.attribute_rates(labels)
    assert rates["helpfulness"] == pytest.approx(5 / 11) and rates["correctness"] != rates["correctness"]  # NaN


def test_proxy_judge_by_hand(real_setup):
    from gcrm_kit.models import load_reward_model, score
    from gcrm_kit.qvalues import pooled_states

    setup, p = real_setup, real_setup.params
    judge = S.get_judge("rm_proxy", setup)
    assert isinstance(judge, S.RewardModelProxyJudge) and "PROXIES" in judge.note
    # complexity has no low prototype: no proxy for it
    assert judge.attributes == ["proxy_reward", "proxy_helpfulness", "proxy_helpfulness_margin"]
    prompts = ["<|user|>\nHi.\n<|assistant|>\n"] * 3
    responses = ["Point 1.\nMore.", "1?\nNo.", ""]
    got = judge(prompts, responses)
    model, tok = load_reward_model(setup.model_dirs["m"][0][1])
    assert [g["proxy_reward"] for g in got] == pytest.approx(
        score(model, tok, prompts, [r or " " for r in responses]).tolist(), abs=1e-5)
    states = pooled_states(model, tok, [q for q, _ in setup.labelled], [r for _, r in setup.labelled])
    hi = states[[lab["helpfulness"] == 1.0 for lab in setup.labels]].mean(0)
    lo = states[[lab["helpfulness"] == 0.0 for lab in setup.labels]].mean(0)
    h = pooled_states(model, tok, prompts, [r or " " for r in responses])
    margin = (F.cosine_similarity(h, hi[None]) - F.cosine_similarity(h, lo[None])).tolist()
    assert [g["proxy_helpfulness_margin"] for g in got] == pytest.approx(margin, abs=1e-5)
    assert [g["proxy_helpfulness"] for g in got] == [float(m > 0) for m in margin]
    # through the setup: a cached judge, and the labels are the ratings (the judge is never asked for them)
    assert S.label_table(p, setup) is setup.labels
    cached = setup.judge("rm_proxy")
    assert isinstance(cached, S.CachedJudge) and cached.calls == 0


def test_judge_factories_with_and_without_the_setup(real_setup):
    seen = {}
    S.register_judge("with_setup_test", lambda setup: seen.setdefault("s", setup) and (lambda q, r: [{}] * len(r)))
    S.register_judge("plain_test", lambda: (lambda q, r: [{"x": 1.0}] * len(r)))
    try:
        S.get_judge("with_setup_test", real_setup)
        assert seen["s"] is real_setup
        assert S.get_judge("plain_test", real_setup)(["q"], ["r"]) == [{"x": 1.0}]
        # a judge that lists no attributes is asked once, on the first labelled example, which attributes it has
        p = _params(judge="plain_test")
        with pytest.raises(KeyError, match=r"no attribute 'proxy_helpfulness' to aim at; it scores \['x'\]"):
            S.label_table(p, real_setup)
    finally:
        S.JUDGES.pop("with_setup_test", None)
        S.JUDGES.pop("plain_test", None)


def test_aim_must_be_a_proxy_the_judge_scores(real_setup):
    p = _params(targets=[{"name": "t", "weights": {"helpfulness_high": 1.0}, "aim": "helpfulness"}])
    with pytest.raises(KeyError, match=r"no attribute 'helpfulness' to aim at; it scores \['proxy_helpfulness'"):
        S.label_table(p, real_setup)


def test_diagnostics_read_the_ratings(real_setup):
    from gcrm_kit.models import load_reward_model

    setup, p = real_setup, real_setup.params
    model, tok = load_reward_model(setup.model_dirs["m"][0][1])
    goals = S.goal_terms(p, S.build_prototypes(p, setup, model, tok, "m", 0))
    d = S.prototype_diagnostics(p, setup, model, tok, goals)["helpful"]
    rated = sum(lab["helpfulness"] is not None for lab in setup.heldout_labels)
    assert d["n_responses"] == rated == 11 and d["labels"].startswith("helpfulness rated high")
    assert 0.0 <= d["final_auroc"] <= 1.0 and 0.0 <= d["steps_auroc"] <= 1.0  # every response has a line end
    table = S.diagnostics_table({"m_seed0": {"helpful": d}})
    assert table["aim"][0] == d["labels"]
    protos = S.build_prototypes(p, setup, model, tok, "m", 0, save_dir=setup.rm_run_dir / "saved")
    assert sorted(x.name for x in (setup.rm_run_dir / "saved").iterdir()) == sorted(
        f"{s['name']}.{ext}" for s in PROTOTYPES for ext in ("pt", "json"))  # in save_dir itself
    prov = protos["helpfulness_high"].provenance
    assert prov["data"] == "rated test rows" and prov["count"] == 5 and "ratings" in prov["judge"]


@pytest.mark.parametrize("data,match", [
    ({"judge": "exact"}, r"judge: `exact` scores toy-world solutions only"),
    ({"exact_oracle": True}, r"exact_oracle"),
    ({"data": {"labelled": {"adapter": "records", "source": "x"}}}, r"data\.labelled\.adapter.*helpsteer"),
    ({"data": {"labelled": {"adapter": "hh_rlhf", "source": "x"}}}, r"gives preference pairs"),
    ({"data": {"prompts": {"adapter": "", "source": ""}}}, r"needs both data\.prompts and data\.labelled"),
    ({"prototypes": [{"name": "c", "attribute": "correct", "value": True}],
      "targets": [{"name": "t", "weights": {"c": 1.0}, "aim": "x"}]}, r"not a HelpSteer rating"),
    ({"data": {"rating_low": 4}}, r"rating_low \(4\) must be below"),
    ({"judge_reward_model": "other"}, r"judge_reward_model"),
])
def test_bad_real_steering_params_name_the_key(data, match):
    from gcrm_kit.params import to_dict

    def merge(a, b):
        return {k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                for k, v in {**a, **b}.items()}

    with pytest.raises(ParamsError, match=match):
        from_dict(SteeringParams, merge(to_dict(_params()), data))


def test_rm_proxy_needs_real_data():
    with pytest.raises(ParamsError, match="rm_proxy reads prototypes of rated responses"):
        from_dict(SteeringParams, {"judge": "rm_proxy"})


def test_toy_params_keep_the_toy_world():
    for name in ("toy", "smoke", "goal_only"):
        p = load_params("04_steering", ROOT / "params" / "04_steering" / f"{name}.yaml")
        assert not p.data.real and p.judge == "exact" and p.beam.step_end == ";" and p.beam.step_end_match == "token"
        assert p.sequence_batch_size == 0 and p.judge_reward_model == ""


def test_paper_yaml_has_the_papers_steering_settings():
    p = load_params("04_steering", ROOT / "params" / "04_steering" / "paper.yaml")
    b = p.beam
    assert (b.n_candidates, b.beam_size, b.max_step_tokens, b.temperature, b.beam_temperature) == (2, 5, 52, 0.2, 0.0)
    assert b.step_end == "\n" and b.step_end_match == "contains" and b.confidence_ratio == 0.0
    assert p.rm_params == "paper_hh" and p.rm_seeds == [42] and set(p.reward_models) == {"goal_conditioned", "baseline"}
    assert (p.data.prompts.adapter, p.data.prompts.source, p.data.prompts.split) == (
        "helpsteer", "nvidia/HelpSteer", "validation")
    assert (p.data.labelled.adapter, p.data.labelled.split) == ("helpsteer", "train")
    towards = {t.name: next(s for s in p.prototypes if s.name == max(t.weights, key=t.weights.get)) for t in p.targets}
    assert {(s.attribute, s.value) for s in towards.values()} == {("helpfulness", True), ("complexity", True)}
    assert p.judge == "rm_proxy" and all(t.aim.startswith("proxy_") for t in p.targets) and not p.exact_oracle
    assert p.prototype_pooling == "last"
    # the params file names the ids the paper used, not local paths
    assert load_params("01_rm_training", ROOT / "params" / "01_rm_training" / "paper_hh.yaml").model.backbone == \
        "meta-llama/Meta-Llama-3-8B-Instruct"
