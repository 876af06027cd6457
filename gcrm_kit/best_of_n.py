"""Best-of-n with a reward model as the judge: the model picks the highest-reward of n sampled solutions, and the
verifier says whether the pick is right. As n grows a good judge's picks get better; a proxy that rewards
something other than correctness gets picked apart, and accuracy stalls or falls: the over-optimisation Gao et
al. ("Scaling Laws for Reward Model Overoptimization", ICML 2023) measure against a gold reward, and which GRM
(Yang et al., NeurIPS 2024) reports its regulariser reduces. Here the gold is the toy world's verifier.

Accuracy at each n is exact, not simulated: among N samples of a question ranked by reward, the best of a
uniformly drawn n-subset is the sample of rank r (0 = highest) with probability C(N-1-r, n-1) / C(N, n).
Samples with equal rewards share their mean correctness (a random tie-break). The references on the same samples:
a random pick (the policy's accuracy, flat in n) and an oracle that picks a right sample whenever one of the n is
right (1 - C(N-c, n) / C(N, n) with c right samples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import comb

import numpy as np

from . import evaluation


def rank_weights(N: int, n: int) -> np.ndarray:
    """(N,) probability that the sample of rank r (0 = highest reward) is the best of a uniform n-subset of N."""
    if not 1 <= n <= N:
        raise ValueError(f"n = {n} must be between 1 and the {N} samples per question")
    return np.array([comb(N - 1 - r, n - 1) for r in range(N)], dtype=float) / comb(N, n)


def best_of_n_accuracy(rewards: np.ndarray, correct: np.ndarray, ns: list[int]) -> np.ndarray:
    """Expected share of questions whose best-of-n pick by `rewards` is right, for each n in `ns`.
    rewards, correct: (Q, N) arrays (N samples per question). Returns (len(ns),)."""
    rewards, correct = np.asarray(rewards, dtype=float), np.asarray(correct, dtype=float)
    Q, N = rewards.shape
    ranked = np.empty_like(correct)
    for q in range(Q):
        order = np.argsort(-rewards[q], kind="stable")
        r, c = rewards[q][order], correct[q][order]
        # tied rewards: each tied sample stands for the group's mean correctness
        _, group, counts = np.unique(r, return_inverse=True, return_counts=True)
        ranked[q] = np.bincount(group, weights=c)[group] / counts[group]
    return np.array([float((ranked @ rank_weights(N, n)).mean()) for n in ns])


def oracle_accuracy(correct: np.ndarray, ns: list[int]) -> np.ndarray:
    """Expected share of questions with at least one right sample among a uniform n-subset, for each n."""
    correct = np.asarray(correct, dtype=bool)
    Q, N = correct.shape
    c = correct.sum(1)
    return np.array([float(np.mean([1.0 - comb(N - k, n) / comb(N, n) for k in c])) for n in ns])


@dataclass
class BestOfN:
    """Best-of-n on one set of questions: `rows` (one per reward model, seed, training-set size and n), `summary`
    (mean and std over seeds), `references` (random pick and oracle per n), the sample counts, and the figure."""

    rows: list[dict]
    summary: list[dict]
    references: list[dict]
    counts: dict
    figure: object = None

    def as_dict(self) -> dict:
        return {"rows": self.rows, "summary": self.summary, "references": self.references, **self.counts}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds of best-of-n accuracy per reward model, training-set size and n."""
    out = []
    for key in dict.fromkeys((r["reward_model"], r["n_train_pairs"], r["n"]) for r in rows):
        vals = [r["accuracy"] for r in rows if (r["reward_model"], r["n_train_pairs"], r["n"]) == key]
        mean, std, k = evaluation.mean_std(vals)
        out.append({"reward_model": key[0], "n_train_pairs": key[1], "n": key[2], "accuracy": mean, "std": std,
                    "n_seeds": k})
    return out


def measure(p, run, result) -> BestOfN | None:
    """Notebook 01's best-of-n section: `p.evaluation.best_of_n_questions` questions of `best_of_n_split` (none
    among the training or held-out pairs' questions) with max(`best_of_n`) samples each from the run's policy
    (cached), scored by every reward model `result` trained (every seed and training-set size); writes
    best_of_n.json and adds it to metrics.json. None when `p.evaluation.best_of_n` is empty."""
    from . import plots
    from .models import load_reward_model, score
    from .rm_training import eval_device, reward_model_dir
    from .toyworld.sampling import cached_samples

    e = p.evaluation
    if not e.best_of_n:
        return None
    world = result.world
    records = cached_samples(p, run.cache_root, world.policy_dir, e.best_of_n_split, "best_of_n")
    seen = {x.prompt for x in world.train_pairs + world.heldout_pairs}
    by_q: dict[str, list] = {}
    for r in records:
        if r.prompt not in seen:
            by_q.setdefault(r.prompt, []).append(r)
    N = max(e.best_of_n)
    groups = [rs for rs in by_q.values() if len(rs) == N]
    if not groups:
        raise ValueError(f"best-of-n: every sampled {e.best_of_n_split!r} question is among the training pairs")
    prompts = [r.prompt for rs in groups for r in rs]
    responses = [r.response for rs in groups for r in rs]
    correct = np.array([[r.is_correct for r in rs] for rs in groups])
    ns = sorted(set(e.best_of_n))
    specs = {s.name: s for s in p.reward_models}
    rows = []
    for row in result.rows:
        n_sub = None if row["all_pairs"] else row["n_train_pairs"]
        d = reward_model_dir(run, specs[row["reward_model"]], row["rm_seed"], n_sub)
        model, tokenizer = load_reward_model(d)
        rewards = score(model.to(eval_device(p)), tokenizer, prompts, responses, e.batch_size,
                        desc=f"best-of-n {d.name}").reshape(len(groups), N).numpy()
        for n, acc in zip(ns, best_of_n_accuracy(rewards, correct, ns)):
            rows.append({"reward_model": row["reward_model"], "rm_seed": row["rm_seed"],
                         "n_train_pairs": row["n_train_pairs"], "n": n, "accuracy": acc})
    references = [{"n": n, "random": float(correct.mean()), "oracle": o}
                  for n, o in zip(ns, oracle_accuracy(correct, ns))]
    counts = {"split": e.best_of_n_split, "n_questions": len(groups), "samples_per_question": N,
              "questions_left_out": len({r.prompt for r in records}) - len(groups)}  # among the RM's pairs
    out = BestOfN(rows, summarise(rows), references, counts)
    out.figure = plots.best_of_n(out.summary, references)
    plots.save_figure(out.figure, run.path("figures", "best_of_n"))
    run.write_json("best_of_n.json", out.as_dict())
    metrics = json.loads(run.path("metrics.json").read_text())
    run.write_json("metrics.json", {**metrics, "best_of_n": out.as_dict()})
    return out
