"""Two readings of a reward model's reward: at the EOS the kit appends (where training reads it) and at the
response's last token with no EOS appended (where a scorer that adds none reads it). The no-EOS score is a plain
forward pass over BOS + prompt + response read at its last token; evaluation reports its AUROC per split beside
the EOS one, and the summary and the results table carry it."""

import pytest
import torch

from gcrm_kit import evaluation
from gcrm_kit.data import GenerationRecord, PreferencePair, encode
from gcrm_kit.models import load_reward_model, reward_model_from_policy, score
from gcrm_kit.rm_training import RMData, RMTrainingResult, evaluate_reward_model, results_table, summarise

PROMPTS = ["1+2?", "7 plus 3 times 2?", "4*4?"]
RESPONSES = ["1+2=3;A:3", "7+3=0;0*2=0;A:0", "4*4=16;A:16"]


def test_encode_without_eos_drops_only_the_eos(tokenizer):
    for p, r in zip(PROMPTS, RESPONSES):
        with_eos, without = encode(tokenizer, p, r), encode(tokenizer, p, r, eos=False)
        assert without.input_ids == with_eos.input_ids[:-1] and without.response_start == with_eos.response_start
        assert without.input_ids[-1] != tokenizer.eos_token_id


def _plain_reward(model, ids: list[int]) -> float:
    """The head on the final state of the sequence's last token, one unpadded sequence, no kit code in between."""
    out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return float(model.score(out.hidden_states[-1][0, -1]))


@torch.no_grad()
def test_no_eos_score_is_the_reward_at_the_last_content_token(tiny_policy_dir, tokenizer):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    model.eval()
    at_eos = score(model, tok, PROMPTS, RESPONSES, batch_size=2)  # batches of unequal lengths: padding is exercised
    at_last = score(model, tok, PROMPTS, RESPONSES, batch_size=2, eos=False)
    bos = [tokenizer.bos_token_id]
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        ids = bos + tokenizer(p, add_special_tokens=False)["input_ids"] + tokenizer(r, add_special_tokens=False)[
            "input_ids"]
        assert at_last[i].item() == pytest.approx(_plain_reward(model, ids), abs=1e-5)
        assert at_eos[i].item() == pytest.approx(_plain_reward(model, ids + [tokenizer.eos_token_id]), abs=1e-5)
        assert abs(at_last[i].item() - at_eos[i].item()) > 1e-6  # two different positions, two different rewards


def _records(n: int, shift: int) -> list[GenerationRecord]:
    return [GenerationRecord(f"{i + shift}+1?", f"{i + shift}+1={i + shift + 1 - i % 2};A:{i + shift + 1 - i % 2}",
                             i % 2 == 0) for i in range(n)]


def test_evaluation_rows_summary_and_table_carry_the_last_token_reading(tiny_policy_dir, tmp_path):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    splits = {"id": _records(8, 1), "x.y": _records(6, 20)}
    held = [PreferencePair("1+1?", "1+1=2;A:2", "1+1=3;A:3")]
    world = RMData(tiny_policy_dir, splits, [], held, {})
    m = evaluate_reward_model(tmp_path / "rm", world, batch_size=4)
    assert set(m["auroc_last_token"]) == set(m["auroc"]) == {"id", "x.y"}
    loaded, ltok = load_reward_model(tmp_path / "rm")
    for split, recs in splits.items():
        last = score(loaded, ltok, [r.prompt for r in recs], [r.response for r in recs], eos=False)
        expected = evaluation.auroc(last.tolist(), [r.is_correct for r in recs])
        assert m["auroc_last_token"][split] == pytest.approx(expected) and 0.0 <= expected <= 1.0
    rows = [{"reward_model": "b", "rm_seed": s, **m} for s in (0, 1)]
    (entry,) = summarise(rows, ["id", "x.y"])
    assert entry["auroc_last_token"]["id"] == {"mean": pytest.approx(m["auroc_last_token"]["id"]), "std": 0.0,
                                               "n": 2}
    result = RMTrainingResult(tmp_path, world, rows, [entry], {})
    table = results_table(result, read="last_token")
    assert list(table.columns) == ["seeds", "pairwise acc", "AUROC id (last token)", "AUROC x.y (last token)"]
    assert list(results_table(result).columns) == ["seeds", "pairwise acc", "AUROC id", "AUROC x.y"]


def test_last_token_table_needs_the_reading_and_a_known_read(tmp_path):
    rows = [{"reward_model": "b", "rm_seed": 0, "pairwise_accuracy": 0.5, "auroc": {"id": 0.6}}]
    (entry,) = summarise(rows, ["id"])
    assert "auroc_last_token" not in entry  # rows without the reading: the summary keeps its old keys only
    result = RMTrainingResult(tmp_path, None, rows, [entry], {})
    with pytest.raises(ValueError, match="has no 'auroc_last_token'"):
        results_table(result, read="last_token")
    with pytest.raises(ValueError, match="read='first' is not one of"):
        results_table(result, read="first")
