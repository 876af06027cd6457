"""After a reward model's training (in this process or a launched one): check the saved checkpoint against the
trained model's rewards, build its `correct` prototype, drop the training checkpoints and mark it DONE."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..data import PreferencePair
from ..device import resolve_device
from ..io import atomic_write_json
from ..models import load_reward_model, score
from ..params import RMTrainingParams
from ..qvalues import build_prototype
from .accelerator import release_accelerator_memory
from .screening import screen_pairs
from .world import RMData

log = logging.getLogger(__name__)
DONE = "DONE"
"""marker file of a finished reward model folder"""


def check_saved_rewards(out_dir: Path, tolerance: float | None = None, device: str | torch.device = "cpu") -> dict:
    """Load the checkpoint in `out_dir` with plain `transformers` in this one process, on `device`, and score the
    probe pairs of `rewards_at_save.json` again. Returns {"max_abs_diff", "n", "tolerance", "ok"}; writes
    checkpoint_check.json. The default tolerance is 1e-4 for float32 and 5e-2 for bf16 or 4-bit training (the
    merged 4-bit model is the dequantised base plus the adapter, which differs from the 4-bit kernels by
    rounding)."""
    saved = json.loads((out_dir / "rewards_at_save.json").read_text())
    spec = json.loads((out_dir / "rm_spec.json").read_text())
    if tolerance is None:
        low = spec.get("model", {}).get("dtype", "float32") != "float32" or spec.get("quant", {}).get("load_in_4bit")
        tolerance = 5e-2 if low else 1e-4
    model, tokenizer = load_reward_model(out_dir)
    model.to(device)
    again = score(model, tokenizer, saved["prompts"], saved["responses"], desc="probe")
    del model
    release_accelerator_memory()
    diff = float((again - torch.tensor(saved["rewards"])).abs().max()) if len(again) else 0.0
    out = {"max_abs_diff": diff, "n": len(again), "tolerance": tolerance, "ok": diff <= tolerance}
    atomic_write_json(out_dir / "checkpoint_check.json", out)
    if not out["ok"]:
        log.warning("%s: rewards from the saved checkpoint differ from the trained model's by %.3g (> %.3g)",
                    out_dir, diff, tolerance)
    return out


def finish_reward_model(p: RMTrainingParams, world: RMData, out_dir: Path,
                        train_pairs: list[PreferencePair] | None = None) -> Path:
    """After `fit_reward_model` (in this process or a launched one): check the saved checkpoint against the trained
    model's rewards, build the `correct` prototype from it (chosen responses of the pairs of `train_pairs`, by
    default all of `world.train_pairs`, that the model was trained on: those `encode_pairs` keeps), drop the
    training checkpoints and mark it DONE. Both checks run on `resolve_device(p.device)`."""
    train_pairs = world.train_pairs if train_pairs is None else train_pairs
    device = resolve_device(p.device)
    check_saved_rewards(out_dir, device=device)
    model, tokenizer = load_reward_model(out_dir)
    model.to(device)
    _, trained, skips = screen_pairs(tokenizer, train_pairs, p.training.max_length, world.screened.get("train"))
    proto = build_prototype(model, tokenizer, [x.prompt for x in trained],
                            [x.chosen for x in trained], name="correct", pooling="last",
                            provenance={"checkpoint": str(out_dir), "data": "chosen responses of train_pairs.jsonl",
                                        "pairs_left_out": dict(skips.skipped)})
    proto.save(out_dir)
    del model
    release_accelerator_memory()
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    (out_dir / DONE).write_text("trained\n")
    return out_dir
