"""Best-of-n with a reward model as the judge: the model picks the highest-reward of n sampled solutions, and the
verifier says whether the pick is right. As n grows a good judge's picks get better; a proxy that rewards
something other than correctness gets picked apart, and accuracy stalls or falls: the over-optimisation Gao et
al. ("Scaling Laws for Reward Model Overoptimization", ICML 2023) measure against a gold reward, and which GRM
(Yang et al., NeurIPS 2024) reports its regulariser reduces. Here the gold is the toy world's verifier.

Accuracy at each n is exact, not simulated (`evaluation.best_of_n_accuracy`), over all n-subsets of the samples
drawn. The references on the same samples: a random pick (the policy's accuracy, flat in n) and an oracle that
picks a right sample whenever one of the n is right (`evaluation.oracle_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import evaluation, plots
from ..device import resolve_device
from ..models import load_reward_model, score
from ..prm import load_prm, prm_step_scores
from ..params import RMTrainingParams
from ..runs import Run
from ..toyworld.sampling import cached_samples
from . import figures
from .process_fit import solution_score
from .report import RMTrainingResult, write_metrics
from .train import reward_model_dir


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


def measure(p: RMTrainingParams, run: Run, result: RMTrainingResult) -> BestOfN | None:
    """Notebook 01's best-of-n section: `p.evaluation.best_of_n_questions` questions of `best_of_n_split` (none
    among the training or held-out pairs' questions) with max(`best_of_n`) samples each from the run's policy
    (cached), scored on `resolve_device(p.device)` by every reward model `result` trained (every seed and
    training-set size); writes best_of_n.json and adds it to metrics.json. None when `p.evaluation.best_of_n` is
    empty."""
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
    device = resolve_device(p.device)
    rows = []
    for row in result.rows:
        n_sub = None if row["all_pairs"] else row["n_train_pairs"]
        d = reward_model_dir(run, specs[row["reward_model"]], row["rm_seed"], n_sub)
        if specs[row["reward_model"]].kind == "process":  # a solution's score: its lowest step probability
            model, tokenizer = load_prm(d)
            steps = prm_step_scores(model.to(device), tokenizer, prompts, responses, e.batch_size)
            rewards = np.array([solution_score(s) for s in steps]).reshape(len(groups), N)
        else:
            model, tokenizer = load_reward_model(d)
            rewards = score(model.to(device), tokenizer, prompts, responses, e.batch_size,
                            desc=f"best-of-n {d.name}").reshape(len(groups), N).numpy()
        for n, acc in zip(ns, evaluation.best_of_n_accuracy(rewards, correct, ns)):
            rows.append({"reward_model": row["reward_model"], "objective": row["objective"], "rm_seed": row["rm_seed"],
                         "n_train_pairs": row["n_train_pairs"], "n": n, "accuracy": acc})
    references = [{"n": n, "random": float(correct.mean()), "oracle": o}
                  for n, o in zip(ns, evaluation.oracle_accuracy(correct, ns))]
    counts = {"split": e.best_of_n_split, "n_questions": len(groups), "samples_per_question": N,
              "questions_left_out": len({r.prompt for r in records}) - len(groups)}  # among the RM's pairs
    out = BestOfN(rows, summarise(rows), references, counts)
    out.figure = figures.best_of_n(out.summary, references)
    plots.save_figure(out.figure, run.path("figures", "best_of_n"))
    run.write_json("best_of_n.json", out.as_dict())
    write_metrics(run, p, result, best_of_n=out.as_dict())
    return out
