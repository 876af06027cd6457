"""Evaluating one trained reward model as a user would load it: held-out pairwise accuracy and, per split, AUROC of
the final reward for correctness, read at the EOS (`auroc`, where training reads it) and at the response's last
token with no EOS appended (`auroc_last_token`, where a scorer that adds no EOS reads it); and the warning for seeds
that stayed at chance."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import evaluation
from ..io import atomic_write_json
from ..data import encode, pad_batch
from ..models import last_token_index, load_reward_model, reward_forward, score
from .accelerator import release_accelerator_memory
from .screening import screen_pairs, screen_records
from .world import RMData


def evaluate_reward_model(model_dir: Path, world: RMData, batch_size: int = 256, device: str | torch.device = "cpu",
                          max_length: int | None = None) -> dict:
    """Held-out pairwise accuracy and, per split, AUROC of the final reward for correctness read at the EOS
    (`auroc`) and, on the same records, read at the response's last token with the EOS left out
    (`auroc_last_token`); the model is loaded with plain `transformers` from `model_dir`, as a user would. Writes
    eval_scores.json beside it (per split, one EOS reward per record of `world.eval_records`, null for a record left
    out).

    Only what training would accept is scored: held-out pairs by `encode_pairs`'s rules, records with a non-empty
    response, both no longer than `max_length` tokens (default: the model's training.max_length in rm_spec.json).
    A world from `build_world` is screened already; what is left out here is counted in the result's
    `skipped` ({"heldout": {reason: n}, "eval": {split: {reason: n}}})."""
    if max_length is None:
        spec_file = Path(model_dir) / "rm_spec.json"
        if spec_file.is_file():
            max_length = json.loads(spec_file.read_text()).get("training", {}).get("max_length")
    model, tokenizer = load_reward_model(model_dir)
    model.to(device)
    _, held, held_skips = screen_pairs(tokenizer, world.heldout_pairs, max_length, world.screened.get("heldout"))
    rc = score(model, tokenizer, [x.prompt for x in held], [x.chosen for x in held], batch_size)
    rr = score(model, tokenizer, [x.prompt for x in held], [x.rejected for x in held], batch_size)
    out = {"pairwise_accuracy": evaluation.pairwise_accuracy(rc, rr), "auroc": {},
           "auroc_last_token": {}, "skipped": {"heldout": dict(held_skips.skipped), "eval": {}}}
    scores = {}
    for split, all_recs in world.eval_records.items():
        recs, idx, rep = screen_records(tokenizer, all_recs, max_length)
        out["skipped"]["eval"][split] = dict(rep.skipped)
        # and the same records without the EOS: the reward at the last content token, where the preference loss
        # never ranks, as a scorer that appends no EOS reads it (from the same forward pass)
        s, last = rewards_with_and_without_eos(model, tokenizer, [r.prompt for r in recs],
                                               [r.response for r in recs], batch_size, desc=f"scoring {split}")
        out["auroc"][split] = evaluation.auroc(s.tolist(), [r.is_correct for r in recs])
        out["auroc_last_token"][split] = evaluation.auroc(last.tolist(), [r.is_correct for r in recs])
        aligned = [None] * len(all_recs)
        for i, v in zip(idx, s.tolist()):
            aligned[i] = v
        scores[split] = aligned
    atomic_write_json(model_dir / "eval_scores.json", scores)
    del model
    release_accelerator_memory()
    return out


@torch.no_grad()
def rewards_with_and_without_eos(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 128,
                                 desc: str = "scoring") -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (N,) read at the EOS, exactly as `models.score` gives them (the same batches and forward passes), and
    (N,) read at each response's last token from the same passes: a causal model's state there does not see the EOS,
    so it is what `score(..., eos=False)` reads, up to float round-off (its batches are padded one token narrower
    where the longest sequence sets the width), at half the forward passes."""
    model.eval()
    dev = next(model.parameters()).device
    at_eos, before = [], []
    for s in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        seqs = [encode(tokenizer, p, r) for p, r in zip(prompts[s:s + batch_size], responses[s:s + batch_size])]
        b = pad_batch(seqs, tokenizer.pad_token_id)
        out = reward_forward(model, b["input_ids"].to(dev), b["attention_mask"].to(dev), b["position_ids"].to(dev))
        last = last_token_index(b["attention_mask"]).to(dev) - 1  # the response's last token, before the EOS
        at_eos.append(out.rewards.float().cpu())
        before.append(out.token_rewards[torch.arange(len(seqs), device=dev), last].float().cpu())
    return (torch.cat(at_eos), torch.cat(before)) if at_eos else (torch.zeros(0), torch.zeros(0))


def warn_chance_level(rows: list[dict], alpha: float = 0.01) -> list[dict]:
    """Print (and return) the rows whose held-out pairwise accuracy is not above chance at level `alpha`: such a
    seed did not learn to rank its pairs, and averages over seeds that include it mix two different outcomes."""
    flat = [r for r in rows if r.get("pairwise_p_above_chance") is not None and r["pairwise_p_above_chance"] >= alpha]
    for r in flat:
        print(f"[gcrm] warning: {r['reward_model']} seed {r['rm_seed']} ({r['n_train_pairs']} pairs) is not above "
              f"chance on held-out pairs: pairwise accuracy {r['pairwise_accuracy']:.3f} "
              f"(p = {r['pairwise_p_above_chance']:.2g})", flush=True)
    return flat
