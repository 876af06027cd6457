"""Seeds that stay at chance are flagged, not averaged away silently."""

from gcrm_kit.evaluation import pairwise_p_above_chance
from gcrm_kit.rm_training import warn_chance_level


def test_pairwise_p_above_chance():
    assert pairwise_p_above_chance(None, 100) is None and pairwise_p_above_chance(0.9, 0) is None
    # 0.52 of 321 pairs is chance; 0.70 of 321 is not
    assert pairwise_p_above_chance(0.523, 321) > 0.1
    assert pairwise_p_above_chance(0.707, 321) < 1e-10
    # the same accuracy is weaker evidence on fewer pairs
    assert pairwise_p_above_chance(0.6, 20) > pairwise_p_above_chance(0.6, 300)


def test_warn_chance_level_names_the_flat_seeds(capsys):
    rows = [{"reward_model": "baseline", "rm_seed": 0, "n_train_pairs": 10, "pairwise_accuracy": 0.707,
             "pairwise_p_above_chance": pairwise_p_above_chance(0.707, 321)},
            {"reward_model": "baseline", "rm_seed": 2, "n_train_pairs": 10, "pairwise_accuracy": 0.523,
             "pairwise_p_above_chance": pairwise_p_above_chance(0.523, 321)},
            {"reward_model": "x", "rm_seed": 1, "n_train_pairs": 10, "pairwise_accuracy": None,
             "pairwise_p_above_chance": None}]
    flat = warn_chance_level(rows)
    assert [r["rm_seed"] for r in flat] == [2]
    assert "baseline seed 2" in capsys.readouterr().out


def test_policy_verdict_table_is_empty_without_a_toy_policy(tmp_path):
    from gcrm_kit.rm_training import RMData, policy_verdict_table

    table = policy_verdict_table(RMData(tmp_path, {}, [], [], {}, {}))
    assert list(table.columns) == ["policy verdict AUROC", "n"] and table.empty


def test_verdict_scores_read_at_each_rows_eos(tmp_path):
    """Batched with right padding, each row's verdict is read at its own EOS: equal to scoring it alone."""
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config, verdict_scores
    from gcrm_kit.toyworld.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config(PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
                                  tok)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    prompts, responses = ["3+4*2?", "7-1?", "2*2+3-1?"], ["3+4=7;7*2=4;A:4", "7-1=6;A:6", "2*2=4;A:4"]
    batched = verdict_scores(tmp_path, prompts, responses, batch_size=3)
    alone = np.concatenate([verdict_scores(tmp_path, [q], [r]) for q, r in zip(prompts, responses)])
    assert batched.shape == (3,) and np.allclose(batched, alone, atol=1e-5)
    assert not np.allclose(batched, batched[0])  # rows differ: each read at its own position
