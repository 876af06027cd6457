"""The house rules of gcrm_kit's layout, checked on the source (no imports executed).

- every module stays small (MAX_LINES);
- the graph of imports between gcrm_kit modules has no cycle, counting imports inside functions too;
- no function imports a gcrm_kit module (a local import is how a cycle hides);
- stage packages (one per notebook) never import each other, and shared modules never import a stage package.

`python tests/unit/test_layout.py` prints the module list with line counts and the import graph's cycles (none).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "gcrm_kit"
MAX_LINES = 400
STAGES = ("rm_training", "representation", "filtering", "steering")
"""the stage packages, one per notebook (01-04)"""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """{dotted module name: file} for every .py file under gcrm_kit/."""
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute dotted name of a `from <level dots><target> import ...` inside module `current`."""
    if level == 0:
        return target or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported gcrm_kit module, line, inside a function) for every import statement in the module.

    `from pkg import sub` counts as an import of the submodule `pkg.sub` when it is one, else of `pkg`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.split(".")[0] == "gcrm_kit":
                        out.append((a.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(name, is_package, child.level, child.module)
                if target.split(".")[0] != "gcrm_kit":
                    continue
                for a in child.names:
                    sub = f"{target}.{a.name}"
                    out.append((sub if sub in known else target, child.lineno, in_function))
            visit(child, local)

    visit(tree, False)
    return out


def with_packages(target: str, importer: str) -> set[str]:
    """`target` and the packages above it that importing it runs first (their __init__), less the importer's own
    enclosing packages, which are being imported already whenever the importer runs."""
    own = {".".join(importer.split(".")[:i]) for i in range(1, len(importer.split(".")) + 1)}
    parts = target.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - own | {target}


def graph() -> dict[str, set[str]]:
    """{module: the gcrm_kit modules importing it runs}, with the packages above each import counted."""
    known = modules()
    return {m: {u for t, _, _ in imports_of(m, p, known) for u in with_packages(t, m) if u in known and u != m}
            for m, p in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_modules_are_small():
    big = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by job): {big}"


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_local_imports_of_the_kit():
    known = modules()
    local = [f"{m}:{line} imports {t}" for m, p in known.items()
             for t, line, inside in imports_of(m, p, known) if inside]
    assert not local, "import gcrm_kit modules at the top of the file:\n" + "\n".join(local)


def test_stages_import_only_shared_modules():
    bad = []
    for m, targets in graph().items():
        mine = stage_of(m)
        for t in targets:
            theirs = stage_of(t)
            if theirs is not None and theirs != mine:
                bad.append(f"{m} -> {t}")
    assert not bad, "a stage package imports another stage (or a shared module imports a stage):\n" + "\n".join(bad)


def test_the_checks_can_fail(tmp_path):
    """The cycle finder and the import reader catch a cycle hidden in a function."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    pkg = tmp_path / "gcrm_kit"
    pkg.mkdir()
    f = pkg / "x.py"
    f.write_text("from .y import z\n\ndef g():\n    from . import w\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = imports_of("gcrm_kit.x", f, {"gcrm_kit.y": f, "gcrm_kit.w": f, "gcrm_kit.x": f})
    finally:
        ROOT = old
    assert found == [("gcrm_kit.y", 1, False), ("gcrm_kit.w", 4, True)]
    # importing a submodule runs its package's __init__ first, unless the importer lives in that package
    assert with_packages("gcrm_kit.params.core", "gcrm_kit.runs") == {"gcrm_kit.params", "gcrm_kit.params.core"}
    assert with_packages("gcrm_kit.params.core", "gcrm_kit.params.scale") == {"gcrm_kit.params.core"}


if __name__ == "__main__":
    for m, p in modules().items():
        print(f"{len(p.read_text(encoding='utf-8').splitlines()):5d}  {m}")
    print("cycles:", cycles(graph()) or "none")
