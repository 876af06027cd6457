"""Seeds that stay at chance are flagged, not averaged away silently."""

from gcrm_kit.rm_training import pairwise_p_above_chance, warn_chance_level


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
