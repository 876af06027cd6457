"""environment.yml and pyproject.toml give the same environment: same packages, same pins, extras included."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m[1].lower().replace("_", "-"), m[2].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    want = dict(_norm(r) for r in project["dependencies"] + extras["lab"] + extras["dev"] + extras["scale"]
                + extras["bench"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = dict(_norm(r) for r in pip if not r.startswith("-e"))
    assert got == want
    assert "-e ." in pip
    # the GPU-only extra is present, commented out, in environment.yml
    commented = re.findall(r"^\s*#\s*-\s*([A-Za-z0-9_.\-]+\S*)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    assert dict(_norm(r) for r in commented) == dict(_norm(r) for r in extras["gpu"])


def test_environment_python_satisfies_requires_python():
    """The conda environment's Python is one that pyproject.toml accepts (tested on 3.11; tomllib needs it)."""
    from packaging.specifiers import SpecifierSet

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert SpecifierSet(requires).contains(python.split("=", 1)[1] + ".0")
