"""Shipped base policies: a trained toy policy kept in the package, so the default path need not train one.

Training the default world's policy is most of `make toy`'s time on a CPU (24 of 27 minutes of notebook 01), and
every user would train the same one. So the kit ships it, as a reproducible artifact:

- it is built by a kit command, `gcrm ship-policy --params toy`, which trains it (or takes it from the run cache)
  exactly as notebook 01 does and writes it under ``gcrm_kit/toyworld/shipped/<cache hash>/``;
- its `PROVENANCE.json` carries the params it was built from (the policy cache key), the sha256 of every file, and
  the sha256 of the base corpus those params make (`corpus_sha256`), so a test can check it against the world code
  that must produce it: if the corpus, the params or the file bytes change, the test fails;
- it is used only when its cache key equals the run's (the same world, policy params and seed) and every file
  still has its recorded hash; otherwise the policy is trained as always. `policy.shipped: false` trains from
  scratch whatever is shipped.

Input: the run's policy cache key (toyworld.policy.policy_cache_key). Output: the folder of a matching shipped
policy, or None. toyworld.policy uses it; `ship_policy` there builds one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..io import atomic_write_json, normal_permissions
from ..runs import params_hash

#: where shipped policies live, one folder per policy cache hash
SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"
PROVENANCE = "PROVENANCE.json"
#: the files of a policy folder that are shipped (the cache folder's, without checkpoints)
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "training_log.json", "verdict_check.json", "key.json")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_shipped(folder: Path) -> dict:
    """Read `folder`'s provenance and check every shipped file against its recorded sha256. Returns the provenance.
    Raises ValueError naming the folder and the file that is missing or differs."""
    prov_path = folder / PROVENANCE
    if not prov_path.is_file():
        raise ValueError(f"shipped policy {folder}: {PROVENANCE} missing")
    prov = json.loads(prov_path.read_text())
    for name, digest in prov["files"].items():
        f = folder / name
        if not f.is_file():
            raise ValueError(f"shipped policy {folder}: file {name} missing")
        if sha256_of(f) != digest:
            raise ValueError(f"shipped policy {folder}: file {name} differs from its recorded sha256 ({digest[:12]}...): "
                             "rebuild it with `gcrm ship-policy` or set policy.shipped: false")
    return prov


def find_shipped(key: dict, root: Path = SHIPPED_ROOT) -> Path | None:
    """The shipped policy folder built from exactly this policy cache key, or None. Raises ValueError if the
    matching folder fails check_shipped."""
    folder = root / params_hash(key)
    if not folder.is_dir():
        return None
    prov = check_shipped(folder)
    if prov["key"] != json.loads(json.dumps(key)):
        raise ValueError(f"shipped policy {folder}: its key differs from the run's although the hash matches")
    return folder


def copy_shipped(folder: Path, dest: Path) -> None:
    """Copy a checked shipped policy into a cache folder being built (`dest`), with a `source.json` saying so."""
    for name in SHIPPED_FILES:
        if (folder / name).is_file() and name != "key.json":  # runs.cached writes the key itself
            shutil.copyfile(folder / name, dest / name)
    atomic_write_json(dest / "source.json", {"source": "shipped", "folder": folder.name,
                                             "model_sha256": sha256_of(folder / "model.safetensors")})
    normal_permissions(dest)


def ship(policy_dir: Path, key: dict, corpus_digest: str, built_by: str, root: Path = SHIPPED_ROOT) -> Path:
    """Write the trained policy in `policy_dir` (a cache folder of toyworld.policy.get_policy, built from `key`) as a
    shipped policy: its files, their sha256, the key and the sha256 of its base corpus (`corpus_digest`). Replaces
    an earlier shipped copy of the same key only as a whole (written to a temporary folder, then renamed). Returns
    the shipped folder."""
    if json.loads((policy_dir / "key.json").read_text()) != json.loads(json.dumps(key)):
        raise ValueError(f"ship: {policy_dir}/key.json is not the key of these params and seed")
    final = root / params_hash(key)
    tmp = root / f"{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name in SHIPPED_FILES:
        if not (policy_dir / name).is_file():
            raise ValueError(f"ship: {policy_dir} has no {name}")
        shutil.copyfile(policy_dir / name, tmp / name)
        files[name] = sha256_of(tmp / name)
    atomic_write_json(tmp / PROVENANCE, {"built_by": built_by, "key": key, "corpus_sha256": corpus_digest,
                                         "files": files})
    normal_permissions(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final
