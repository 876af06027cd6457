"""Resume picks the newest complete Trainer checkpoint: a folder whose save was cut off (the files
`Trainer._save_checkpoint` writes, trainer_state.json last) is passed over, and a warning names it and what it lacks."""

import json
import logging

from gcrm_kit.training import TRAINER_STATE, checkpoint_gaps, resume_checkpoint

# what Trainer._save_checkpoint writes for a plain (non-DeepSpeed) run, in its order; trainer_state.json last
SAVE_ORDER = ["config.json", "model.safetensors", "training_args.bin", "optimizer.pt", "scheduler.pt",
              "rng_state.pth", TRAINER_STATE]


def _checkpoint(root, step, files=SAVE_ORDER):
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    for f in files:
        (d / f).write_text(json.dumps({"global_step": step}) if f == TRAINER_STATE else "x")
    return d


def test_complete_checkpoint_has_no_gaps_and_each_cut_point_is_caught(tmp_path):
    assert checkpoint_gaps(_checkpoint(tmp_path, 2)) == []
    for k in range(len(SAVE_ORDER)):  # a kill after the first k files of the save
        gaps = checkpoint_gaps(_checkpoint(tmp_path / f"cut{k}", 4, SAVE_ORDER[:k]))
        assert gaps and f"{TRAINER_STATE} missing" in gaps, k


def test_resume_skips_a_cut_off_newest_checkpoint_and_names_it(tmp_path, caplog):
    older = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 10, SAVE_ORDER[:-1])  # killed while writing: everything but trainer_state.json
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.training"):
        assert resume_checkpoint(tmp_path) == str(older)
    text = caplog.text
    assert "checkpoint-10" in text and f"{TRAINER_STATE} missing" in text and "checkpoint-4" in text


def test_resume_orders_by_step_not_by_name_and_reports_every_skipped_folder(tmp_path, caplog):
    _checkpoint(tmp_path, 9)
    _checkpoint(tmp_path, 10, ["config.json", "model.safetensors"])  # "10" < "9" as strings
    _checkpoint(tmp_path, 12, [])
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.training"):
        assert resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-9")
    assert "checkpoint-10" in caplog.text and "checkpoint-12" in caplog.text
    assert "optimizer.pt missing" in caplog.text and "no model weights" in caplog.text


def test_truncated_trainer_state_counts_as_incomplete(tmp_path, caplog):
    older = _checkpoint(tmp_path, 2)
    cut = _checkpoint(tmp_path, 4)
    (cut / TRAINER_STATE).write_text('{"global_step": 4, "log_hist')
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.training"):
        assert resume_checkpoint(tmp_path) == str(older)
    assert f"{TRAINER_STATE} unreadable" in caplog.text


def test_no_complete_checkpoint_means_a_fresh_start_with_a_warning(tmp_path, caplog):
    assert resume_checkpoint(tmp_path / "absent") is None
    assert resume_checkpoint(tmp_path) is None and not caplog.text
    _checkpoint(tmp_path, 2, SAVE_ORDER[:3])
    (tmp_path / "checkpoint-x").mkdir()  # not a Trainer checkpoint name: ignored
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.training"):
        assert resume_checkpoint(tmp_path) is None
    assert "checkpoint-2" in caplog.text and "from the beginning" in caplog.text


def test_deepspeed_and_save_only_model_checkpoints(tmp_path):
    ds = _checkpoint(tmp_path, 2, ["config.json", "latest", "rng_state_0.pth", "rng_state_1.pth", TRAINER_STATE])
    (ds / "global_step2").mkdir()  # weights, optimiser and scheduler live here under DeepSpeed ZeRO-3
    assert checkpoint_gaps(ds) == []
    only_model = _checkpoint(tmp_path, 4, ["config.json", "model.safetensors", TRAINER_STATE])
    assert checkpoint_gaps(only_model, save_only_model=True) == []
    assert set(checkpoint_gaps(only_model)) == {"optimizer.pt missing", "scheduler.pt missing",
                                                "rng_state.pth missing"}
