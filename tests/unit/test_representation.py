"""The analyses of notebook 02 on hand-made per-token values, where the right answer is known."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gcrm_kit import evaluation
from gcrm_kit.params import ParamsError, RepresentationParams, from_dict
from gcrm_kit.qvalues import TokenValues
from gcrm_kit.representation import correlations, curves, examples, localisation, projection
from gcrm_kit.representation.figures import token_shading


def _tv(rows, q_name="correct"):
    """TokenValues from a list of 1-D value rows (same values for Q and head)."""
    L = np.array([len(r) - 1 for r in rows])
    K = L.max()
    v = np.full((len(rows), K + 1), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        v[i, : len(r)] = r
    return TokenValues({q_name: v.copy()}, v.copy(), L, [list("x" * n) for n in L])


def test_auroc_rows_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(40) < 0.4
        s = rng.integers(0, 5, 40).astype(float)  # many ties
        assert evaluation.auroc_rows(s[None], y[None])[0] == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(evaluation.auroc_rows(np.arange(5.0)[None], np.ones((1, 5), bool))[0])


def test_partial_auroc_grows_as_the_evidence_arrives():
    """Correct solutions rise after half the response, incorrect ones fall: chance at 0%, perfect at 100%."""
    rng = np.random.default_rng(1)
    labels = np.array([True, False] * 30)
    rows = []
    for y in labels:
        L = int(rng.integers(8, 14))
        r = rng.normal(0, 0.01, L + 1)
        r[L // 2 + 1:] += 1.0 if y else -1.0
        rows.append(r)
    values = {"rm": [_tv(rows), _tv(rows)]}
    a = curves.partial_auroc(values, labels, [0.0, 0.2, 0.8, 1.0], ["correct", "head"], n_bootstrap=200, seed=0)
    c = a.data["curves"]["rm"]["correct"]
    assert abs(c["mean"][0] - 0.5) < 0.2 and c["mean"][2] == 1.0 and c["mean"][3] == 1.0
    assert c["ci_low"][0] < c["mean"][0] < c["ci_high"][0] and c["seed_std"] == [0.0] * 4
    assert curves.at_fraction(a.data, "rm", "head", 1.0)["mean"] == 1.0
    with pytest.raises(KeyError):
        curves.at_fraction(a.data, "rm", "head", 0.5)
    assert a.figure is not None


def test_bootstrap_interval_is_that_of_the_seed_mean():
    rng = np.random.default_rng(2)
    labels = rng.random(300) < 0.5
    s1 = labels + rng.normal(0, 1.0, 300)
    scores = np.stack([s1[None], (labels + rng.normal(0, 1.0, 300))[None]])  # (S=2, F=1, N)
    boot = evaluation.bootstrap_auroc(scores, labels, 500, seed=0)
    point = np.mean([roc_auc_score(labels, scores[s, 0]) for s in range(2)])
    lo, hi = np.percentile(boot[:, 0], [2.5, 97.5])
    assert lo < point < hi and 0.02 < hi - lo < 0.2


def test_error_localisation_finds_a_planted_drop_and_reports_chance():
    # 10 incorrect solutions of 20 tokens, each with a drop 2 tokens after its first error at column e
    rng = np.random.default_rng(3)
    rows, errs = [], []
    for _ in range(10):
        e = int(rng.integers(3, 12))
        r = np.linspace(0.5, 0.6, 21) + rng.normal(0, 0.001, 21)
        r[e + 2:] -= 0.5
        rows.append(r)
        errs.append(e)
    labels = np.zeros(10, bool)
    errs = np.array(errs)
    values = {"rm": [_tv(rows)]}
    a = localisation.error_localisation(values, labels, errs, ["correct"], window=(0, 5))
    s = a.data["scores"]["rm"]["correct"]
    assert s["hit_rate"] == 1.0 and s["median_offset"] == 2 and s["n"] == 10
    assert s["chance"] == pytest.approx(6 / 20)  # a 6-token window inside 20 columns
    aligned = a.data["aligned"]["rm"]["correct"]["incorrect"]
    d = a.data["offsets"]
    assert aligned[d.index(2)] == pytest.approx(-0.5, abs=0.02) and abs(aligned[d.index(0)]) < 0.02
    # a window the drop misses scores zero
    assert localisation.localisation_score(values["rm"][0], "correct", errs, np.arange(10), (3, 5))["hit_rate"] == 0.0


def test_chance_counts_only_columns_inside_the_row():
    tv = _tv([np.arange(6.0)[::-1]])  # 5 response columns, decreasing
    s = localisation.localisation_score(tv, "correct", np.array([4]), np.array([0]), (0, 5))
    assert s["chance"] == pytest.approx(2 / 5)  # only columns 4 and 5 exist


def test_reward_correlations_are_one_when_q_tracks_the_reward():
    rng = np.random.default_rng(4)
    rows = []
    for _ in range(30):
        final = rng.normal()
        r = np.full(11, final) + rng.normal(0, 1e-3, 11)
        rows.append(r)
    a = correlations.reward_correlations({"rm": [_tv(rows)]}, [0.2, 0.8], ["correct"])
    c = a.data["correlations"]["rm"]["correct"]
    assert c["pearson"]["mean"][0] > 0.99 and c["spearman"]["mean"][1] > 0.99


def test_mean_curves_and_examples():
    labels = np.array([True, False])
    values = {"rm": [_tv([np.ones(5), np.zeros(7)])]}
    a = curves.mean_curves(values, labels, "correct", [0.0, 1.0])
    assert a.data["curves"]["rm"]["correct"]["mean"] == [1.0, 1.0]
    assert a.data["curves"]["rm"]["incorrect"]["mean"] == [0.0, 0.0]
    idx = examples.choose_examples(labels, np.array([-1, 3]), 2, 0)
    assert idx == [1, 0]


def test_projections_pca_and_tsne_and_skipped_umap(monkeypatch):
    rng = np.random.default_rng(5)
    rows = [rng.normal(size=9) for _ in range(8)]
    tv = _tv(rows)
    tv.hidden = [rng.normal(size=(len(r), 6)).astype(np.float32) for r in rows]
    from gcrm_kit.qvalues import Prototype
    import torch

    protos = {"rm": [{"correct": Prototype("correct", torch.randn(6))}]}
    monkeypatch.setattr(projection, "umap_available", lambda: False)
    out = projection.projections({"rm": [tv]}, protos, np.array([True, False] * 4), "correct",
                                 ["pca", "tsne", "umap"], 4)
    m = out["pca"].data["maps"]["rm"]
    assert len(m["x"]) == 4 * 8 and m["prototype_xy"] is not None and len(m["explained_variance_ratio"]) == 2
    assert sum(m["correct"]) == 2 * 8  # balanced: 2 correct and 2 incorrect solutions of 8 tokens
    assert len(out["tsne"].data["maps"]["rm"]["y"]) == 32
    assert "skipped" in out["umap"].data and out["umap"].figure is None


def test_token_shading_is_inline_html():
    v = token_shading(list("1+2=3"), [{"label": "gc · Q", "values": [0.1, 0.2, 0.3, 0.9, -0.5], "vmin": 0.0,
                                      "vmax": 1.0}], title="1+2? <b>", mark=3)
    html = v._repr_html_()
    assert html.count("<span") == 5 and "&lt;b&gt;" in html and "border-bottom" in html
    assert "=: 0.9000" in html and v.page().startswith("<!doctype html>")


def test_params_validation():
    p = from_dict(RepresentationParams, {})
    assert p.q_prototype == "correct" and p.fractions[0] == 0.0 and p.fractions[-1] == 1.0
    with pytest.raises(ParamsError, match="q_prototype"):
        from_dict(RepresentationParams, {"q_prototype": "helpful"})
    with pytest.raises(ParamsError, match="fractions"):
        from_dict(RepresentationParams, {"fractions": [0.5, 1.5]})
    with pytest.raises(ParamsError, match=r"prototypes\[0\]\.pooling"):
        from_dict(RepresentationParams, {"prototypes": [{"name": "x", "pooling": "max"}]})
    with pytest.raises(ParamsError, match="split"):
        from_dict(RepresentationParams, {"split": ""})


def test_matched_columns_follow_the_tokens_that_precede_real_errors():
    # incorrect rows: errors right after ';' ; control rows: pseudo-errors must also follow a ';'
    tv = _tv([np.zeros(13)] * 4)
    tv.tokens = [list("1+2=3;3+1=5;") + ["</s>"], list("1+2=4;4+1=5;") + ["</s>"],
                 list("2*2=4;4-1=3;") + ["</s>"], list("5+5=0;0+0=0;") + ["</s>"]]
    errs = np.array([7, 1, -1, -1])  # row 0: step 2 starts at token 6 (column 7); row 1: at the start
    cols = localisation.matched_columns(tv, errs, np.array([0, 1]), np.array([2, 3]), seed=0)
    assert cols[0] == -1 and cols[1] == -1
    for i in (2, 3):
        c = cols[i]
        assert c == 1 or tv.tokens[i][c - 2] == ";"


def test_params_device_follows_the_one_device_rule():
    assert from_dict(RepresentationParams, {}).device == "auto"
    assert from_dict(RepresentationParams, {"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ParamsError, match=r"device: expected one of auto, cpu, cuda or cuda:<index>, got 'gpu'"):
        from_dict(RepresentationParams, {"device": "gpu"})


def test_nan_aware_seed_statistics():
    a = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    np.testing.assert_array_equal(evaluation.nanmean0(a), [2.0, 2.0, np.nan])
    np.testing.assert_allclose(evaluation.nanstd0(a), [np.sqrt(2.0), 0.0, np.nan])
