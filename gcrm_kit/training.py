"""Reward-model training through `transformers.Trainer`: Bradley-Terry plus the goal-conditioned term.

Only `compute_loss` is the kit's: batching, gradient accumulation, clipping, schedules, checkpoints and resume,
logging, progress bars and DeepSpeed all come from the `Trainer`. `resume_checkpoint` picks the checkpoint a cut-off
run resumes from (reward models and the toy policy alike), passing over one whose save was cut off.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .io import normal_permissions
from .losses import bradley_terry_loss, contrastive_loss, draw_positions, grm_regulariser, response_logps
from .models import reward_forward
from .params import ContrastiveParams, RewardModelSpec

#: attribute under which GRM's language-model head rides on the reward model during training
GRM_LM_HEAD = "grm_lm_head"
#: file in each checkpoint holding a process's contrastive-position generator state
DRAW_STATE_FILE = "draw_generator_{rank}.pth"

_log = logging.getLogger(__name__)

class OpenPermissions(TrainerCallback):
    """After every checkpoint save, give the files under the output folder the permissions `open()` would
    (`io.normal_permissions`): transformers writes weights and optimizer state as private 0600 files."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            normal_permissions(args.output_dir)


class RewardTrainer(Trainer):
    """A Trainer whose loss is (1 - a) * BT + lambda * goal-conditioned contrastive + a * GRM regulariser,
    with lambda = `spec.contrastive_weight` and a = `spec.grm_weight`.

    Batches come from `data.PairCollator`: 2B rows, the B chosen sequences first, then the B rejected, with
    `response_mask` and `position_ids`. Logged besides `loss`: `bt_loss`, `contrastive_loss`, `grm_loss`,
    `accuracy` (share of training pairs ranked right), `pi_pos`, `pi_neg`, `reward_margin`, averaged over the
    logging window.

    GRM needs a language-model head on the reward model's final states: attach it with `attach_lm_head` before
    building the trainer (so the optimiser and checkpoints include it) and pass `reference` (a frozen causal LM)
    for the `dpo` regulariser.
    """

    def __init__(self, *args, contrastive: ContrastiveParams, spec: RewardModelSpec | None = None,
                 reference=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(OpenPermissions())
        self.contrastive = contrastive
        self.spec = spec or RewardModelSpec()
        self.contrastive_weight = float(self.spec.contrastive_weight)
        self.grm_weight = float(self.spec.grm_weight)
        self.reference = prepare_reference(reference, self.args) if reference is not None else None
        if self.grm_weight > 0 and getattr(self._unwrapped(), GRM_LM_HEAD, None) is None:
            raise ValueError("grm_weight > 0 needs a language-model head: call attach_lm_head(model, ...) first")
        if self.grm_weight > 0 and self.spec.grm_regulariser == "dpo" and reference is None:
            raise ValueError("the 'dpo' GRM regulariser needs a frozen reference model")
        self._window: dict[str, list[float]] = defaultdict(list)
        self._draw_generator: torch.Generator | None = None
        self._draw_generator_restored: dict | None = None  # a checkpoint's generator state, applied on first use

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Trainer's save, then the saved files made readable like the rest of the run folder (`OpenPermissions`)."""
        super().save_model(output_dir, _internal_call)
        if self.is_world_process_zero():
            normal_permissions(output_dir or self.args.output_dir)

    def _unwrapped(self):
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def _generator(self, device) -> torch.Generator:
        if self._draw_generator is None or self._draw_generator.device != torch.device(device):
            self._draw_generator = torch.Generator(device=device)
            self._draw_generator.manual_seed(self.args.seed + 7919 * (self.args.process_index + 1))
            restored, self._draw_generator_restored = self._draw_generator_restored, None
            if restored is not None:
                if torch.device(restored["device"]).type == self._draw_generator.device.type:
                    self._draw_generator.set_state(restored["state"])
                else:
                    _log.warning("contrastive positions: the checkpoint's generator ran on %s, this run on %s; "
                                 "drawing from a fresh seed, so the resumed run's positions differ from an "
                                 "uninterrupted run's", restored["device"], self._draw_generator.device)
        return self._draw_generator

    # The contrastive positions come from a generator of their own (not the global RNG the Trainer saves in its
    # checkpoints): its state is saved beside each checkpoint's RNG state, one file per process, and restored where
    # the Trainer restores its own, so a resumed run draws the positions an uninterrupted one would.

    def _draw_state_file(self, checkpoint: str) -> Path:
        return Path(checkpoint) / DRAW_STATE_FILE.format(rank=self.args.process_index)

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        if self._draw_generator is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            torch.save({"device": str(self._draw_generator.device), "state": self._draw_generator.get_state()},
                       self._draw_state_file(output_dir))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None or self.contrastive_weight <= 0:
            return
        f = self._draw_state_file(checkpoint)
        if not f.is_file():
            _log.warning("contrastive positions: %s not found; the resumed run draws from a fresh seed, so its "
                         "positions differ from an uninterrupted run's", f)
            return
        self._draw_generator_restored = torch.load(f, weights_only=True)
        self._draw_generator = None  # rebuilt (and given the saved state) on the next draw, on the batch's device

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = reward_forward(model, inputs["input_ids"], inputs["attention_mask"], inputs.get("position_ids"))
        B = inputs["input_ids"].shape[0] // 2
        r_c, r_r = out.rewards[:B], out.rewards[B:]
        bt = bradley_terry_loss(r_c, r_r)
        loss = (1.0 - self.grm_weight) * bt
        stats = {"bt_loss": bt.detach(), "accuracy": (r_c > r_r).float().mean(),
                 "reward_margin": (r_c - r_r).detach().mean()}
        if self.contrastive_weight > 0:
            mask = inputs["response_mask"]
            c = self.contrastive
            draw = draw_positions(mask[:B], mask[B:], c.n_positive, c.n_negative, c.source_range, c.goal_range,
                                  generator=self._generator(mask.device))
            con = contrastive_loss(out.hidden[:B], out.hidden[B:], draw, c.variant)
            loss = loss + self.contrastive_weight * con.loss
            stats.update(contrastive_loss=con.loss.detach(), pi_pos=con.pi_pos.mean().detach(),
                         pi_neg=con.pi_neg.mean().detach())
        if self.grm_weight > 0:
            reg = self._grm_loss(out.hidden, inputs, B)
            loss = loss + self.grm_weight * reg
            stats["grm_loss"] = reg.detach()
        if model.training:
            for k, v in stats.items():
                self._window[k].append(float(v))
        if return_outputs:
            return loss, {"rewards_chosen": r_c, "rewards_rejected": r_r}
        return loss

    def _grm_loss(self, hidden: torch.Tensor, inputs: dict, B: int) -> torch.Tensor:
        """GRM regulariser from the LM head applied to the reward model's own final states (2B, T, D)."""
        kind = self.spec.grm_regulariser
        head = getattr(self._unwrapped(), GRM_LM_HEAD)
        rows = slice(0, B) if kind == "sft" else slice(None)  # SFT needs the chosen responses only
        logits = head(hidden[rows])
        lp, n = response_logps(logits, inputs["input_ids"][rows], inputs["response_mask"][rows])
        if kind == "sft":
            return grm_regulariser("sft", lp, None, n)
        ref_c = ref_r = None
        if kind == "dpo":
            with torch.no_grad():
                ref_logits = self.reference(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                            position_ids=inputs.get("position_ids")).logits
                ref, _ = response_logps(ref_logits, inputs["input_ids"], inputs["response_mask"])
            ref_c, ref_r = ref[:B], ref[B:]
        return grm_regulariser(kind, lp[:B], lp[B:], n[:B], ref_c, ref_r, self.spec.grm_beta)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._window:  # every process logs at the same steps with the same statistics
            reduce = (lambda t: self.accelerator.reduce(t, "sum")) if self.args.world_size > 1 else None
            logs.update(window_means(self._window, reduce, self.args.device))
            self._window.clear()
        super().log(logs, *args, **kwargs)


def attach_lm_head(model, causal_lm, trainable: bool = True) -> torch.nn.Module:
    """Give the reward model GRM's language-model head: a copy of `causal_lm`'s output layer, riding on the model
    as the submodule `grm_lm_head` so the optimiser trains it (unless `trainable` is False, as under LoRA where
    the LM head stays untouched) and checkpoints carry it. Remove it with `detach_lm_head` before the final save:
    the saved reward model stays a plain sequence-classification checkpoint. Returns the head."""
    src = causal_lm.get_output_embeddings()
    head = torch.nn.Linear(src.in_features, src.out_features, bias=src.bias is not None)
    with gathered(src):  # under ZeRO-3 the causal LM was built partitioned: copy the full weights
        head.load_state_dict(src.state_dict())
    head.to(device=next(model.parameters()).device, dtype=src.weight.dtype)
    head.requires_grad_(trainable)
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    target.add_module(GRM_LM_HEAD, head)
    return head


def detach_lm_head(model) -> torch.nn.Module | None:
    """Remove and return the GRM language-model head from `model` (None if it has none)."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(target, GRM_LM_HEAD, None)
    if head is not None:
        delattr(target, GRM_LM_HEAD)
    return head


def gathered(module: torch.nn.Module):
    """A context in which `module`'s parameters hold their full values: DeepSpeed's GatheredParameters when ZeRO-3
    has partitioned them (every process must enter it), otherwise nothing."""
    params = [p for p in module.parameters() if hasattr(p, "ds_id")]
    if not params:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


def prepare_reference(reference: torch.nn.Module, args) -> torch.nn.Module:
    """GRM's frozen reference, ready for forward passes beside the model the Trainer trains with `args`. Under
    DeepSpeed ZeRO-3 transformers built it partitioned (each process holds 1/N of it, as of the reward model), so
    it gets a DeepSpeed engine of its own, without an optimiser, whose hooks gather each layer's weights for its
    forward; the config is the training run's (`args`'s resolved DeepSpeed config) less the optimiser parts. A
    4-bit model stays where it was loaded; any other goes to the training device."""
    if not any(hasattr(p, "ds_id") for p in reference.parameters()):
        if getattr(reference, "is_loaded_in_4bit", False) or getattr(reference, "hf_device_map", None):
            return reference
        return reference.to(args.device)
    import deepspeed

    cfg = copy.deepcopy(args.hf_deepspeed_config.config)
    for key in ("optimizer", "scheduler"):
        cfg.pop(key, None)
    zero = cfg.setdefault("zero_optimization", {})
    zero.pop("offload_optimizer", None)
    h = reference.config.hidden_size
    # the sizes transformers fills from the trained model's hidden size when training starts (same rule)
    for key, value in {"reduce_bucket_size": h * h, "stage3_prefetch_bucket_size": int(0.9 * h * h),
                       "stage3_param_persistence_threshold": 10 * h}.items():
        if zero.get(key) == "auto":
            zero[key] = value
    left = [k for k, v in _flatten(cfg).items() if v == "auto"]
    if left:
        raise ValueError(f"DeepSpeed config {args.deepspeed}: 'auto' left for GRM's reference model at {left}; "
                         "give these keys values")
    engine, *_ = deepspeed.initialize(model=reference, config=cfg)
    engine.eval()  # DeepSpeedEngine.eval returns None, not the engine
    return engine


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ------------------------------------------------------------------------------------------------ resume

#: what `Trainer._save_checkpoint` writes last, after the weights, optimiser, scheduler and RNG states: a checkpoint
#: folder without it (or with it cut short) is a save that was interrupted
TRAINER_STATE = "trainer_state.json"
#: files `Trainer.save_model` writes the weights to (full model, sharded, or a peft adapter); a DeepSpeed checkpoint
#: may hold its weights only in its own `global_step*` folder
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_gaps(folder: str | Path, save_only_model: bool = False) -> list[str]:
    """What the `Trainer` checkpoint folder `folder` lacks to be resumed from, one phrase per gap naming the file;
    [] when it is complete.

    Complete means what `Trainer._save_checkpoint` (transformers 5) writes, in its order: the weights (`WEIGHT_FILES`,
    or a DeepSpeed `global_step*` folder), then unless `save_only_model` the optimiser and scheduler states
    (`optimizer.pt`, `scheduler.pt`; inside `global_step*` under DeepSpeed) and the RNG state (`rng_state*.pth`),
    and last `trainer_state.json`, which must read as JSON. A save killed part-way lacks at least the last."""
    folder = Path(folder)
    gaps = []
    deepspeed = any(p.is_dir() for p in folder.glob("global_step*"))
    if not deepspeed and not any((folder / f).is_file() for f in WEIGHT_FILES):
        gaps.append(f"no model weights ({WEIGHT_FILES[0]} or another of {', '.join(WEIGHT_FILES[1:])})")
    if not save_only_model:
        if not deepspeed:
            if not ((folder / "optimizer.pt").is_file() or (folder / "optimizer.bin").is_file()):
                gaps.append("optimizer.pt missing")
            if not (folder / "scheduler.pt").is_file():
                gaps.append("scheduler.pt missing")
        if not any(folder.glob("rng_state*.pth")):
            gaps.append("rng_state.pth missing")
    state = folder / TRAINER_STATE
    if not state.is_file():
        gaps.append(f"{TRAINER_STATE} missing")
    else:
        try:
            ok = isinstance(json.loads(state.read_text(encoding="utf-8")), dict)
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            gaps.append(f"{TRAINER_STATE} unreadable (cut off while written)")
    return gaps


def resume_checkpoint(output_dir: str | Path, save_only_model: bool = False) -> str | None:
    """The checkpoint a `Trainer` run writing into `output_dir` resumes from: the newest complete `checkpoint-N`
    folder there (`checkpoint_gaps`), as a path string for `trainer.train(resume_from_checkpoint=...)`; None when
    there is none (or no `output_dir`), so training starts afresh.

    A run killed while the Trainer wrote a checkpoint leaves a partial `checkpoint-N` beside the complete previous
    one, and resuming from it would fail; each newer folder passed over is named in a warning with what it lacks.
    Pass `args.save_only_model` of the run's TrainingArguments."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = {}
    for d in output_dir.iterdir():
        m = _CHECKPOINT_NAME.match(d.name)
        if m and d.is_dir():
            steps[d] = int(m.group(1))
    skipped = []
    for d in sorted(steps, key=steps.get, reverse=True):
        gaps = checkpoint_gaps(d, save_only_model)
        if not gaps:
            for s, why in skipped:
                _log.warning("resume: skipped %s (incomplete: %s; its save was cut off); resuming from %s instead",
                             s, "; ".join(why), d.name)
            _log.info("resuming from %s", d)
            return str(d)
        skipped.append((d, gaps))
    for s, why in skipped:
        _log.warning("resume: skipped %s (incomplete: %s; its save was cut off); no complete checkpoint in %s, "
                     "training starts from the beginning", s, "; ".join(why), output_dir)
    return None


def window_means(window: dict[str, list[float]], sum_over_processes=None, device="cpu") -> dict[str, float]:
    """The mean of each statistic logged over a logging window: `window` maps a name to this process's values (one
    per training batch since the last log); `sum_over_processes` (tensor -> tensor, e.g. the accelerator's
    all-reduce sum; None in one process) adds every process's sums and counts, so a launched run logs the mean
    over all processes' batches, as one process trains them, not the main process's share alone. Every process
    must call it at the same log (the sum is a collective). A name with no value anywhere is left out."""
    names = sorted(window)
    totals = torch.tensor([[sum(window[k]), len(window[k])] for k in names], dtype=torch.float64,
                          device=device).reshape(-1, 2)
    if sum_over_processes is not None and names:
        totals = sum_over_processes(totals)
    return {k: float(s / n) for k, (s, n) in zip(names, totals.cpu().tolist()) if n > 0}
