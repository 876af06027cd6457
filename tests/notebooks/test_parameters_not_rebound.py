"""No notebook rebinds a papermill parameter: re-running its start cell in JupyterLab reads the parameters from the
notebook's globals again, so a later cell that reassigns one (notebook 01's `world` to the built RMData, 03's
`online` to its results, 04's `seed` to a reward-model seed) breaks the second run or silently changes it."""

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def _bound_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def test_every_notebook_is_checked():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_rebinds_a_parameter(notebook):
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    (param_cell,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    params = _bound_names(ast.parse(param_cell.source))
    assert {"params_name", "seed", "run_dir"} <= params
    for i, c in enumerate(cells):
        if c is not param_cell:
            clash = params & _bound_names(ast.parse(c.source))
            assert not clash, f"{notebook.name}: code cell {i} rebinds parameter(s) {sorted(clash)}:\n{c.source}"
