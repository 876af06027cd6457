"""`gcrm compare`: every differing value and missing key of two metrics.json files is reported."""

import json

from gcrm_kit.cli import main
from gcrm_kit.compare import compare_values


def test_compare_values_reports_differences_missing_keys_and_ignored_timings():
    a = {"rows": [{"auroc": 0.9, "seconds": 3.0}, {"auroc": float("nan")}], "n": 4, "gone": 1}
    b = {"rows": [{"auroc": 0.9, "seconds": 5.0}, {"auroc": float("nan")}], "n": 5, "objective": {"role": "x"}}
    c = compare_values(a, b)
    assert c.different == ["n: 4 vs 5"] and c.only_a == ["gone"] and c.only_b == ["objective"]
    assert c.ignored == ["rows[0].seconds"] and c.equal == 2 and not c.identical
    assert compare_values(a, a).identical and compare_values(a, {**a, "new": 1}).identical


def test_gcrm_compare_exits_1_when_runs_differ(tmp_path, capsys):
    for name, v in (("a", 0.5), ("b", 0.5), ("c", 0.6)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"auroc": v}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "auroc: 0.5 vs 0.6" in capsys.readouterr().out
