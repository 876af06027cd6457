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

from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import load_file, save_file

from ..io import atomic_write_json, normal_permissions
from ..runs import params_hash

#: where shipped policies live, one folder per policy cache hash
SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"
PROVENANCE = "PROVENANCE.json"
#: the files of a policy folder that are shipped (the cache folder's, without checkpoints)
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "training_log.json", "verdict_check.json", "key.json")
WEIGHTS = "model.safetensors"
#: the most bytes of one shipped weights file: larger weights are shipped as shards with a
#: `model.safetensors.index.json`, the layout `save_pretrained(max_shard_size=...)` writes and `from_pretrained`
#: reads, so no file of the package grows past what a source repository should hold (4 MB)
SHARD_BYTES = 3_000_000


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
    """Copy a checked shipped policy (every file its provenance lists: one weights file or its shards) into a cache
    folder being built (`dest`), with a `source.json` saying so and naming the files' sha256."""
    files = json.loads((folder / PROVENANCE).read_text())["files"]
    for name in files:
        if name != "key.json":  # runs.cached writes the key itself
            shutil.copyfile(folder / name, dest / name)
    atomic_write_json(dest / "source.json", {"source": "shipped", "folder": folder.name,
                                             "files": {n: d for n, d in files.items() if n != "key.json"}})
    normal_permissions(dest)


def write_weights(src: Path, dest: Path, max_bytes: int = SHARD_BYTES) -> list[str]:
    """Write the safetensors weights file `src` into folder `dest`: as it is when it has at most `max_bytes`, else as
    shards of at most `max_bytes` each plus `model.safetensors.index.json` (huggingface_hub's split, Hugging Face's
    shard names and index), every tensor's bytes unchanged. Returns the names of the files written."""
    if src.stat().st_size <= max_bytes:
        shutil.copyfile(src, dest / WEIGHTS)
        return [WEIGHTS]
    tensors = load_file(src)
    split = split_torch_state_dict_into_shards(tensors, filename_pattern="model{suffix}.safetensors",
                                               max_shard_size=max_bytes)
    for shard, names in split.filename_to_tensors.items():
        save_file({n: tensors[n].contiguous() for n in names}, dest / shard, metadata={"format": "pt"})
    atomic_write_json(dest / f"{WEIGHTS}.index.json",
                      {"metadata": split.metadata, "weight_map": split.tensor_to_filename})
    return [*split.filename_to_tensors, f"{WEIGHTS}.index.json"]


def ship(policy_dir: Path, key: dict, corpus_digest: str, built_by: str, root: Path = SHIPPED_ROOT,
         max_bytes: int = SHARD_BYTES) -> Path:
    """Write the trained policy in `policy_dir` (a cache folder of toyworld.policy.get_policy, built from `key`) as a
    shipped policy: its files (weights over `max_bytes` as shards, write_weights), their sha256, the key and the
    sha256 of its base corpus (`corpus_digest`). Replaces
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
        written = write_weights(policy_dir / name, tmp, max_bytes) if name == WEIGHTS else [name]
        if name != WEIGHTS:
            shutil.copyfile(policy_dir / name, tmp / name)
        files.update({n: sha256_of(tmp / n) for n in written})
    atomic_write_json(tmp / PROVENANCE, {"built_by": built_by, "key": key, "corpus_sha256": corpus_digest,
                                         "files": files})
    normal_permissions(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final
