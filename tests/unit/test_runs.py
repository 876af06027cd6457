import os
from pathlib import Path

import pytest

from gcrm_kit.params import from_dict, RMTrainingParams
from gcrm_kit.runs import cached, params_hash, start_run
from gcrm_kit.io import atomic_write_text


def _params(tmp_path, **kw):
    return from_dict(RMTrainingParams, {"output_root": str(tmp_path), "params_name": "t", **kw})


def test_runs_never_share_a_folder(tmp_path):
    p = _params(tmp_path)
    a, b = start_run(p), start_run(p)
    assert a.dir != b.dir
    assert a.dir.parent == tmp_path / "01_rm_training" / "t"
    for run in (a, b):
        for f in ("params.resolved.yaml", "env.txt", "git.txt"):
            assert (run.dir / f).is_file()
    assert "seed0" in a.dir.name


def test_run_dir_reuse_requires_same_params(tmp_path):
    p = _params(tmp_path)
    run = start_run(p)
    (run.dir / "keep.txt").write_text("x")
    again = start_run(_params(tmp_path, run_dir=str(run.dir)))
    assert again.dir == run.dir and (run.dir / "keep.txt").read_text() == "x"
    with pytest.raises(ValueError, match="differs"):
        start_run(_params(tmp_path, run_dir=str(run.dir), seed=5))


def test_run_dir_with_other_params_is_a_params_error_naming_the_keys(tmp_path):
    from gcrm_kit.params import ParamsError

    run = start_run(_params(tmp_path))
    with pytest.raises(ParamsError) as e:
        start_run(_params(tmp_path, run_dir=str(run.dir), seed=5, training={"learning_rate": 0.001}))
    assert "seed: 0 (run) vs 5 (now)" in str(e.value)
    assert "training.learning_rate: 0.0003 (run) vs 0.001 (now)" in str(e.value)
    assert "run_dir" not in str(e.value).split("differs at")[1]


def test_start_run_seeds(tmp_path):
    import random

    random.seed(123)
    start_run(_params(tmp_path, seed=7))
    first = random.random()
    start_run(_params(tmp_path, seed=7))
    assert random.random() == first


def test_run_dir_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError):
        start_run(_params(tmp_path, run_dir=str(tmp_path / "mine")))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_cached_builds_once_and_hides_partial_builds(tmp_path):
    calls = []

    def build(d: Path):
        calls.append(d)
        (d / "x.txt").write_text("built")

    key = {"a": 1}
    first = cached(tmp_path, "thing", key, build)
    second = cached(tmp_path, "thing", key, build)
    assert first == second and len(calls) == 1 and (first / "x.txt").read_text() == "built"
    assert first.name == params_hash(key)

    def broken(d: Path):
        (d / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached(tmp_path, "thing", {"a": 2}, broken)
    assert not (tmp_path / "thing" / params_hash({"a": 2})).exists()
    # the next attempt sees what the interrupted one left, to resume from it
    seen = []
    cached(tmp_path, "thing", {"a": 2}, lambda d: seen.append((d / "half.txt").exists()))
    assert seen == [True]


def test_find_rm_run_matches_params_and_needs_metrics(tmp_path):
    from gcrm_kit.rm_runs import find_rm_run, resolve_rm_run

    p = _params(tmp_path)
    assert find_rm_run(p) is None
    unfinished = start_run(p)
    assert find_rm_run(p) is None  # no metrics.json yet
    finished = start_run(p)
    (finished.dir / "metrics.json").write_text("{}")
    assert find_rm_run(p) == finished.dir
    assert find_rm_run(_params(tmp_path, seed=1)) is None  # other params, other run
    assert resolve_rm_run(str(finished.dir), "toy") == finished.dir
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        resolve_rm_run(str(unfinished.dir), "toy")


def test_find_rm_run_sees_a_run_made_before_a_field_was_added(tmp_path):
    """A run's params.resolved.yaml written before the kit gained a field (here: without `device`) still matches
    params that leave that field at its default; one whose params no longer read is skipped."""
    from gcrm_kit.rm_runs import find_rm_run

    p = _params(tmp_path)
    old = start_run(p)
    f = old.dir / "params.resolved.yaml"
    f.write_text("\n".join(line for line in f.read_text().splitlines() if not line.startswith("device:")) + "\n")
    (old.dir / "metrics.json").write_text("{}")
    assert find_rm_run(p) == old.dir
    f.write_text(f.read_text() + "no_such_field: 1\n")
    assert find_rm_run(p) is None


def test_atomic_write_gives_normal_permissions(tmp_path):
    import stat

    from gcrm_kit.io import _UMASK

    atomic_write_text(tmp_path / "m.json", "{}")
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~_UMASK


def test_policy_dir_of_follows_a_moved_outputs_folder(tmp_path):
    """rm_spec.json records the policy absolutely and relative to the reward model: after the outputs folder is
    moved (or copied to another machine) the relative path finds the policy; a hub id is kept as written."""
    import json
    import shutil

    from gcrm_kit.rm_runs import policy_dir_of, relative_to

    old = tmp_path / "old" / "outputs"
    policy, rm = old / "_cache" / "policy" / "abc", old / "01_rm_training" / "toy" / "run" / "reward_models" / "b"
    policy.mkdir(parents=True)
    rm.mkdir(parents=True)
    (rm / "rm_spec.json").write_text(json.dumps({"policy_dir": str(policy),
                                                 "policy_dir_relative": relative_to(policy, rm)}))
    assert policy_dir_of(rm) == policy
    new = tmp_path / "elsewhere" / "outputs"
    shutil.move(str(old), str(new))
    moved = new / "01_rm_training" / "toy" / "run" / "reward_models" / "b"
    assert policy_dir_of(moved) == (new / "_cache" / "policy" / "abc").resolve()
    (rm.parent).mkdir(parents=True)
    hub = rm.parent / "hub"
    hub.mkdir()
    (hub / "rm_spec.json").write_text(json.dumps({"policy_dir": "org/model", "policy_dir_relative": None}))
    assert str(policy_dir_of(hub)) == "org/model" and relative_to("org/model", hub) is None


def test_resume_keeps_the_first_attempts_env_and_commit(tmp_path, monkeypatch):
    from gcrm_kit import runs

    monkeypatch.setenv(runs.ATTEMPT_ENV, "")  # restored (unset) after the test
    monkeypatch.setattr(runs, "git_sha", lambda root: "aaa111")
    monkeypatch.setattr(runs, "environment_report", lambda: "torch: 1.0\n")
    run = start_run(_params(tmp_path))
    # `gcrm run` opens the folder, then the notebook it starts opens it again: still the first attempt
    start_run(_params(tmp_path, run_dir=str(run.dir)))
    assert (run.dir / "git.txt").read_text() == "aaa111\n"
    assert (run.dir / "env.txt").read_text() == "torch: 1.0\n"

    # a resume in a new process, at another commit with another environment
    monkeypatch.delenv(runs.ATTEMPT_ENV)
    monkeypatch.setattr(runs, "git_sha", lambda root: "bbb222")
    monkeypatch.setattr(runs, "environment_report", lambda: "torch: 2.0\n")
    with pytest.warns(UserWarning, match="attempt 2.*bbb222.*started at aaa111"):
        start_run(_params(tmp_path, run_dir=str(run.dir)))
    git = (run.dir / "git.txt").read_text().splitlines()
    assert git[0] == "aaa111" and git[1].startswith("attempt 2 (") and git[1].endswith("): bbb222")
    env = (run.dir / "env.txt").read_text()
    assert env.startswith("torch: 1.0\n") and "--- attempt 2 (" in env and env.endswith("torch: 2.0\n")

    # a third attempt at the first commit: recorded, no warning
    monkeypatch.delenv(runs.ATTEMPT_ENV)
    monkeypatch.setattr(runs, "git_sha", lambda root: "aaa111")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start_run(_params(tmp_path, run_dir=str(run.dir)))
    git = (run.dir / "git.txt").read_text().splitlines()
    assert len(git) == 3 and git[2].startswith("attempt 3 (") and git[2].endswith("): aaa111")


def test_normal_permissions_opens_private_files(tmp_path):
    import stat

    from gcrm_kit.io import _UMASK, normal_permissions

    (tmp_path / "ckpt").mkdir()
    f = tmp_path / "ckpt" / "model.safetensors"
    f.write_bytes(b"x")
    os.chmod(f, 0o600)
    normal_permissions(tmp_path)
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~_UMASK


def test_start_run_takes_what_exists_out_of_later_collections_after_collecting_garbage(tmp_path):
    import gc

    class Node:
        pass

    gc.unfreeze()
    cycle = Node()
    cycle.me = cycle  # garbage that only the collector frees
    alive = Node()
    del cycle
    before = gc.get_freeze_count()
    start_run(_params(tmp_path))
    try:
        assert gc.get_freeze_count() > before
        assert not any(isinstance(o, Node) and o is not alive for o in gc.get_objects())  # collected, not frozen
        assert not gc.is_tracked(alive) or all(o is not alive for o in gc.get_objects())  # frozen: not walked
    finally:
        gc.unfreeze()


def test_releasing_accelerator_memory_collects_nothing_without_cuda(monkeypatch):
    import gc

    import torch

    from gcrm_kit.rm_training import accelerator

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a) or 0)
    accelerator.release_accelerator_memory()
    assert calls == []
