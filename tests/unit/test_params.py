from pathlib import Path

import pytest

from gcrm_kit.params import NOTEBOOK_PARAMS, ParamsError, RMTrainingParams, from_dict, load_params, to_dict

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_validate():
    p = from_dict(RMTrainingParams, {})
    assert p.reward_models[0].name == "baseline" and p.reward_models[1].contrastive_weight == 0.5


def test_partial_section_keeps_other_defaults():
    p = from_dict(RMTrainingParams, {"policy": {"hidden_size": 64}})
    assert p.policy.hidden_size == 64 and p.policy.num_layers == RMTrainingParams().policy.num_layers


@pytest.mark.parametrize("data,match", [
    ({"sead": 1}, r"unknown key\(s\) \['sead'\]"),
    ({"policy": {"hiden_size": 64}}, r"policy\.hiden_size"),
    ({"seed": "one"}, r"seed: expected an integer"),
    ({"seed": True}, r"seed: expected an integer"),
    ({"training": {"learning_rate": "fast"}}, r"training\.learning_rate: expected a number"),
    ({"contrastive": {"variant": "dot"}}, r"contrastive\.variant"),
    ({"contrastive": {"source_range": [0.5]}}, r"contrastive\.source_range"),
    ({"contrastive": {"source_range": [0.5, 1.0], "goal_range": [0.0, 1.0]}}, r"goal_range must not start"),
    ({"reward_models": [{"name": "a"}, {"name": "a"}]}, r"distinct names"),
    ({"reward_models": [{"name": "a", "lambda": 1}]}, r"reward_models\[0\]\.lambda|lambda"),
    ({"evaluation": {"splits": ["id", "gsm_hard"]}}, r"unknown split 'gsm_hard'"),
])
def test_bad_params_name_the_key(data, match):
    with pytest.raises(ParamsError, match=match):
        from_dict(RMTrainingParams, data)


def test_load_params_names_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("seed: 1\nworld:\n  corpus_sise: 10\n")
    with pytest.raises(ParamsError, match=r"mine\.yaml: .*world\.corpus_sise"):
        load_params("01_rm_training", f)
    f.write_text("seed: [1\n")
    with pytest.raises(ParamsError, match=r"mine\.yaml: not valid YAML"):
        load_params("01_rm_training", f)
    f.write_text("params_name: other\n")
    with pytest.raises(ParamsError, match="differs from the file name"):
        load_params("01_rm_training", f)


def test_params_name_comes_from_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("seed: 3\n")
    p = load_params("01_rm_training", f)
    assert p.params_name == "mine" and p.seed == 3


def test_every_params_file_is_valid_and_named_after_itself():
    files = [(nb, f) for nb in NOTEBOOK_PARAMS for f in (ROOT / "params" / nb).glob("*.yaml")]
    assert files, "no params files found"
    for nb, f in files:
        p = load_params(nb, f)
        assert p.params_name == f.stem


def test_every_notebook_has_toy_and_smoke_params():
    for nb in NOTEBOOK_PARAMS:
        assert (ROOT / "params" / nb / "toy.yaml").is_file()
        assert (ROOT / "params" / nb / "smoke.yaml").is_file()


def test_to_dict_round_trip():
    p = from_dict(RMTrainingParams, {"seed": 4, "contrastive": {"goal_range": [0.5, 1.0]}})
    assert from_dict(RMTrainingParams, to_dict(p)) == p


def test_params_class_names_are_unique():
    """A second class of the same name would silently replace the first in gcrm_kit.params (and in every
    notebook's params that nest it)."""
    import ast
    import collections

    import gcrm_kit.params as params

    tree = ast.parse(Path(params.__file__).read_text())
    names = collections.Counter(n.name for n in tree.body if isinstance(n, ast.ClassDef))
    assert [n for n, k in names.items() if k > 1] == []


def test_toy_is_full_with_only_its_sizes_trimmed():
    # the main job (toy.yaml) runs the world, models and methods of full.yaml (the default sizes), smaller
    trimmed = {"01_rm_training": {"training.epochs", "evaluation.n_questions"},
               "02_representation_analysis": set(),
               "03_filtering": {"n_validation_questions", "n_test_questions", "online.repeats", "online.methods"},
               "04_steering": {"n_prompts"}}
    for nb, keys in trimmed.items():
        toy = to_dict(load_params(nb, ROOT / "params" / nb / "toy.yaml"))
        full = to_dict(load_params(nb, ROOT / "params" / nb / "full.yaml"))
        flat = {}
        for name in set(toy) | set(full):
            if isinstance(toy[name], dict):
                flat.update({f"{name}.{k}": (toy[name][k], full[name][k]) for k in toy[name]})
            else:
                flat[name] = (toy[name], full[name])
        changed = {k for k, (a, b) in flat.items() if a != b} - {"params_name", "rm_params"}
        assert changed == keys, nb
        assert toy.get("rm_params", "toy") == "toy" and full.get("rm_params", "full") == "full"


def test_the_budget_sweep_changes_only_the_samples_per_question():
    nb = "03_filtering"
    runs = {n: to_dict(load_params(nb, ROOT / "params" / nb / f"budget{n}.yaml")) for n in (8, 16, 32)}
    assert {n: r.pop("samples_per_question") for n, r in runs.items()} == {8: 8, 16: 16, 32: 32}
    names = {r.pop("params_name") for r in runs.values()}
    assert names == {"budget8", "budget16", "budget32"} and runs[8] == runs[16] == runs[32]
