"""`gcrm run` around papermill: failures leave a marker and exit 1, resumes never replace an earlier attempt's
executed notebook, params errors (a resume with other params, a number YAML 1.1 reads as text) exit 2 with the
key named. papermill's execution is replaced by a stand-in here; the notebook tier executes the real ones."""

import json

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from gcrm_kit import notebooks
from gcrm_kit.cli import main


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with notebooks/ and params/01_rm_training/t.yaml, as cwd."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_rm_training.ipynb").write_text("{}")
    (tmp_path / "params" / "01_rm_training").mkdir(parents=True)
    (tmp_path / "params" / "01_rm_training" / "t.yaml").write_text("seed: 3\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _runs(project):
    return sorted((project / "outputs" / "01_rm_training" / "t").iterdir())


def test_a_failed_notebook_leaves_a_marker_and_exits_1(project, monkeypatch, capsys):
    def fail(nb, out, **kw):
        raise PapermillExecutionError(3, 4, "x = 1/0", "ZeroDivisionError", "division by zero", [])

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    assert main(["run", "01_rm_training", "--params", "t", "--quiet"]) == 1
    (run,) = _runs(project)
    marker = json.loads((run / notebooks.FAILED_MARKER).read_text())
    assert marker["notebook"] == "01_rm_training" and "ZeroDivisionError" in marker["error"]
    assert "failed in cell 4: ZeroDivisionError" in capsys.readouterr().err

    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, **kw: open(out, "w").write("{}"))
    assert main(["run", "01_rm_training", "--params", "t", "--run-dir", str(run), "--quiet"]) == 0
    assert not (run / notebooks.FAILED_MARKER).exists()  # the resumed attempt finished


def test_resuming_never_replaces_an_executed_notebook(project, monkeypatch):
    written = []

    def execute(nb, out, **kw):
        written.append(out)
        with open(out, "w") as fh:
            fh.write(f"attempt {len(written)}")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert main(["run", "01_rm_training", "--params", "t", "--quiet"]) == 0
    (run,) = _runs(project)
    for _ in range(2):
        assert main(["run", "01_rm_training", "--params", "t", "--run-dir", str(run), "--quiet"]) == 0
    assert (run / "01_rm_training.ipynb").read_text() == "attempt 1"
    assert (run / "01_rm_training.attempt2.ipynb").read_text() == "attempt 2"
    assert (run / "01_rm_training.attempt3.ipynb").read_text() == "attempt 3"


def test_resume_with_other_params_is_a_params_error(project, monkeypatch, capsys):
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, **kw: open(out, "w").write("{}"))
    assert main(["run", "01_rm_training", "--params", "t", "--quiet"]) == 0
    (run,) = _runs(project)
    (project / "params" / "01_rm_training" / "t.yaml").write_text("seed: 4\n")
    assert main(["run", "01_rm_training", "--params", "t", "--run-dir", str(run), "--quiet"]) == 2
    assert "seed: 3 (run) vs 4 (now)" in capsys.readouterr().err


def test_an_exponent_without_a_dot_is_a_number(project):
    from gcrm_kit.params import load_params

    f = project / "params" / "01_rm_training" / "t.yaml"
    f.write_text("training:\n  learning_rate: 3e-4\n")
    assert load_params("01_rm_training", f).training.learning_rate == 0.0003
    f.write_text("training:\n  learning_rate: '3e-4'\n")
    from gcrm_kit.params import ParamsError

    with pytest.raises(ParamsError, match=r"training.learning_rate: expected a number, got the text '3e-4'.*0.0003"):
        load_params("01_rm_training", f)
