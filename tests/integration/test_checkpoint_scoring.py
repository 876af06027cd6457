"""A saved reward-model checkpoint scores as the kit scores it when read the natural way: plain `AutoTokenizer` +
`AutoModelForSequenceClassification` on prompt + response text, and `pipeline("text-classification")`, give the
kit's rewards and order held-out pairs as the kit does; the kit's own rewards do not depend on the tokenizer's
post-processor."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from gcrm_kit.data import PreferencePair, encode
from gcrm_kit.models import load_reward_model, score
from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict


def _pair(i: int) -> PreferencePair:
    a, b = i % 10, i % 7
    right, wrong = (a + b) % 10, (a + b + 1 + i % 3) % 10
    return PreferencePair(f"{a}+{b}?", f"{a}+{b}={right};A:{right}", f"{a}+{b}={wrong};A:{wrong}")


@pytest.fixture(scope="module")
def trained(tiny_policy_dir, tmp_path_factory):
    """A tiny reward model trained by the kit for a few steps, and held-out pairs it never saw."""
    from gcrm_kit.rm_training import RMData, train_one_reward_model

    pairs = [_pair(i) for i in range(36)]
    world = RMData(tiny_policy_dir, {}, pairs[:24], pairs[24:], {})
    p = from_dict(RMTrainingParams, {"contrastive": {"n_positive": 4, "n_negative": 4}, "training": {
        "batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 100, "learning_rate": 3e-3}})
    out = train_one_reward_model(p, world, RewardModelSpec("m", 0.5), 0, tmp_path_factory.mktemp("rm") / "rm")
    model, tok = load_reward_model(out)
    held = pairs[24:]
    prompts, responses = [x.prompt for x in held] * 2, [x.chosen for x in held] + [x.rejected for x in held]
    return out, prompts, responses, score(model, tok, prompts, responses, batch_size=5)


def _order(rewards: torch.Tensor) -> torch.Tensor:
    n = len(rewards) // 2
    return rewards[:n] > rewards[n:]


def test_plain_transformers_on_prompt_plus_response_gives_the_kits_rewards(trained):
    out, prompts, responses, kit = trained
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    kit_tok = load_reward_model(out)[1]
    for p, r in zip(prompts, responses):
        assert tok(p + r)["input_ids"] == tok(p, r)["input_ids"] == encode(kit_tok, p, r).input_ids
    texts = [p + r for p, r in zip(prompts, responses)]
    with torch.no_grad():
        one_by_one = torch.stack([model(**tok(t, return_tensors="pt")).logits[0, 0] for t in texts])
        batched = model(**tok(texts, return_tensors="pt", padding=True)).logits[:, 0]
    assert kit.abs().max() > 1e-3  # a head that gives rewards apart from zero, so a mismatch would show
    assert torch.allclose(one_by_one, kit, atol=1e-5) and torch.allclose(batched, kit, atol=1e-5)
    assert torch.equal(_order(one_by_one), _order(kit)) and torch.equal(_order(batched), _order(kit))


def test_text_classification_pipeline_gives_the_kits_rewards(trained):
    out, prompts, responses, kit = trained
    pipe = pipeline("text-classification", model=str(out), device="cpu")
    got = pipe([p + r for p, r in zip(prompts, responses)], function_to_apply="none", batch_size=3)
    rewards = torch.tensor([o["score"] for o in got])
    assert torch.allclose(rewards, kit, atol=1e-5)
    assert torch.equal(_order(rewards), _order(kit))
    pairs = pipe([{"text": p, "text_pair": r} for p, r in zip(prompts, responses)], function_to_apply="none")
    assert torch.allclose(torch.tensor([o["score"] for o in pairs]), kit, atol=1e-5)


def test_kit_rewards_do_not_depend_on_the_tokenizers_post_processor(trained):
    from tokenizers import processors

    out, prompts, responses, kit = trained
    model, tok = load_reward_model(out)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")  # adds nothing
    assert torch.equal(score(model, tok, prompts, responses, batch_size=5), kit)
