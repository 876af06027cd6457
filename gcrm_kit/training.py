"""Reward-model training through `transformers.Trainer`: Bradley-Terry plus the goal-conditioned term.

Only `compute_loss` is the kit's: batching, gradient accumulation, clipping, schedules, checkpoints and resume,
logging, progress bars and DeepSpeed all come from the `Trainer`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer

from .losses import bradley_terry_loss, contrastive_loss, draw_positions
from .models import reward_forward
from .params import ContrastiveParams


class RewardTrainer(Trainer):
    """A Trainer whose loss is BT + `contrastive_weight` * goal-conditioned contrastive loss.

    Batches come from `data.PairCollator`: 2B rows, the B chosen sequences first, then the B rejected, with
    `response_mask` and `position_ids`. Logged besides `loss`: `bt_loss`, `contrastive_loss`, `accuracy`
    (share of training pairs ranked right), `pi_pos`, `pi_neg`, `reward_margin`, averaged over the logging window.
    """

    def __init__(self, *args, contrastive: ContrastiveParams, contrastive_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.contrastive = contrastive
        self.contrastive_weight = float(contrastive_weight)
        self._window: dict[str, list[float]] = defaultdict(list)
        self._draw_generator: torch.Generator | None = None

    def _generator(self, device) -> torch.Generator:
        if self._draw_generator is None or self._draw_generator.device != torch.device(device):
            self._draw_generator = torch.Generator(device=device)
            self._draw_generator.manual_seed(self.args.seed + 7919 * (self.args.process_index + 1))
        return self._draw_generator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = reward_forward(model, inputs["input_ids"], inputs["attention_mask"], inputs.get("position_ids"))
        B = inputs["input_ids"].shape[0] // 2
        r_c, r_r = out.rewards[:B], out.rewards[B:]
        bt = bradley_terry_loss(r_c, r_r)
        loss = bt
        stats = {"bt_loss": bt.detach(), "accuracy": (r_c > r_r).float().mean(),
                 "reward_margin": (r_c - r_r).detach().mean()}
        if self.contrastive_weight > 0:
            mask = inputs["response_mask"]
            c = self.contrastive
            draw = draw_positions(mask[:B], mask[B:], c.n_positive, c.n_negative, c.source_range, c.goal_range,
                                  generator=self._generator(mask.device))
            con = contrastive_loss(out.hidden[:B], out.hidden[B:], draw, c.variant)
            loss = bt + self.contrastive_weight * con.loss
            stats.update(contrastive_loss=con.loss.detach(), pi_pos=con.pi_pos.mean().detach(),
                         pi_neg=con.pi_neg.mean().detach())
        if model.training:
            for k, v in stats.items():
                self._window[k].append(float(v))
        if return_outputs:
            return loss, {"rewards_chosen": r_c, "rewards_rejected": r_r}
        return loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._window:
            logs.update({k: sum(v) / len(v) for k, v in self._window.items()})
            self._window.clear()
        super().log(logs, *args, **kwargs)
