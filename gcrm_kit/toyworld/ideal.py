"""A world's bound facts for an *ideal* policy: one that learnt the corpus process exactly. Used to design a world
before any policy is trained (docs/toy_world.md, "A world of confident errors").

A trained policy only approximates its corpus, so the facts measured on its samples (gcrm_kit.bounds, notebook 01)
differ; the ideal ones tell what the world itself allows. The ideal policy's next-token distribution is the corpus
writer's: each step restates the running value and the operator (certain), copies the operand (a slip with
`step_error_rate * operand_slip_share`), and writes the result of the rule the writer believes, or with
`step_error_rate * (1 - operand_slip_share)` another digit. Which misconceptions a solution holds is hidden; the
ideal policy keeps the posterior: the prior is the rate (for questions that trigger it) and a step where the held and
the right rule differ reveals it (a result equal to neither leaves it unchanged). The answer and the EOS are certain.

DeepConf's token confidence needs the top-k log-probabilities; tokens the writer never writes get `floor` instead
of minus infinity, so the confidences are comparable between worlds, not with a trained policy's.

Input: WorldParams and a split name. Output: `IdealBounds` (share correct, first-error oracle saving, and the
confidence AUROC of the four readers of gcrm_kit.confidence)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ..io import project_root
from ..params import load_params
from ..params.world import WorldParams
from .corpus import SlipModel, noisy_solution, strip_marks
from .misconceptions import MISCONCEPTIONS, applicable
from .problems import OPERATORS, SPLITS, STEP_SEP, Problem, sample_problem, verify

#: the readers, in gcrm_kit.confidence's names
READERS = ("mean_logprob", "min_logprob", "lowest_group_confidence", "tail_confidence")


@dataclass(frozen=True)
class IdealBounds:
    """Bound facts of `n` corpus-style solutions of one split under the ideal policy."""

    split: str
    n: int
    share_correct: float
    first_error_oracle_saving: float
    confidence_auroc: dict[str, float]


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def _token_confidence(logps: list[float], k: int, floor: float) -> float:
    """DeepConf's token confidence, minus the mean of the top-k log-probabilities; impossible tokens count as
    `floor`."""
    top = sorted((x for x in logps if x > -math.inf), reverse=True)[:k]
    return -float(np.mean(top + [floor] * (k - len(top))))


def _digit_distribution(right: int, believed_wrong: int | None, q: float, result_slip: float) -> np.ndarray:
    """P(result digit) when the writer holds the wrong rule with probability q (None: no wrong rule applies)."""
    dist = np.zeros(10)
    for value, w in ((right, 1.0 - q), (believed_wrong, q)):
        if value is None or w == 0.0:
            continue
        dist += w * result_slip / 9
        dist[value] += w * (1.0 - result_slip) - w * result_slip / 9
    return dist


def ideal_token_logprobs(problem: Problem, text: str, world: WorldParams, k: int = 20,
                         floor: float = -12.0) -> tuple[list[float], list[float]]:
    """For a corpus-style solution `text` (no marks) of `problem`: each response token's log-probability and DeepConf
    token confidence under the ideal policy of `world` (EOS included). Raises ValueError for a text that is not one
    step per question step plus an answer."""
    ser, osh = world.step_error_rate, world.operand_slip_share
    post = {n: world.misconception_rates[n]
            for n in applicable(problem, world.misconception_rates, world.misconception_min_count)}
    steps = text.split(STEP_SEP)
    if len(steps) != len(problem.steps) + 1:
        raise ValueError(f"ideal_token_logprobs: {text!r} has {len(steps) - 1} steps, the question "
                         f"{problem.prompt!r} {len(problem.steps)}")
    certain = _token_confidence([0.0], k, floor)
    lp: list[float] = []
    conf: list[float] = []
    for (op, d), s in zip(problem.steps, steps[:-1]):
        v, shown, r = int(s[0]), int(s[2]), int(s[4:])
        others = 9 - (2 if op == "%" else 1)
        operand = [_log(1 - ser * osh)] + [_log(ser * osh / others)] * others
        held = [n for n in post if MISCONCEPTIONS[n].operator == op]
        q = post[held[0]] if held else 0.0
        right = OPERATORS[op][1](v, shown)
        wrong = MISCONCEPTIONS[held[0]].rule(v, shown) if held else None
        if wrong == right:
            wrong, q = None, 0.0
        dist = _digit_distribution(right, wrong, q, ser * (1 - osh))
        result = [_log(x) for x in dist]
        # value, operator, operand, '=', result, separator
        lp += [0.0, 0.0, operand[0] if shown == d else operand[1], 0.0, result[r], 0.0]
        conf += [certain, certain, _token_confidence(operand, k, floor), certain,
                 _token_confidence(result, k, floor), certain]
        if wrong is not None:  # a step where the rules differ reveals whether the writer holds the wrong one
            post[held[0]] = 1.0 if r == wrong else (0.0 if r == right else post[held[0]])
    tail = len(steps[-1]) + 1  # the answer 'A:r' and the EOS
    return lp + [0.0] * tail, conf + [certain] * tail


def ideal_bounds(world: WorldParams, split: str, n: int = 2000, seed: int = 0, window: int = 16,
                 tail: int = 16) -> IdealBounds:
    """Draw `n` problems of `split` and a corpus-style solution of each (`world`'s slips and misconceptions), and
    return their share correct, the first-error oracle's token saving (stop each wrong solution after its first
    wrong step, counted in characters, which are the toy tokens, plus the EOS) and the confidence AUROCs."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {sorted(SPLITS)}")
    rng = np.random.default_rng([seed, 7])
    slips = SlipModel(world.step_error_rate, world.operand_slip_share)
    labels, scores = [], {r: [] for r in READERS}
    saved = total = 0
    for _ in range(n):
        problem = sample_problem(rng, SPLITS[split])
        text, correct, _ = noisy_solution(problem, rng, slips, misconception_rates=world.misconception_rates,
                                          misconception_min_count=world.misconception_min_count)
        text = strip_marks(text)
        lp, conf = ideal_token_logprobs(problem, text, world)
        c = np.asarray(conf)
        groups = [c[i:i + window].mean() for i in range(max(1, len(c) - window + 1))]
        scores["mean_logprob"].append(float(np.mean(lp)))
        scores["min_logprob"].append(float(np.min(lp)))
        scores["lowest_group_confidence"].append(float(np.min(groups)))
        scores["tail_confidence"].append(float(c[-tail:].mean()))
        labels.append(bool(correct))
        total += len(text) + 1
        if not correct:
            first = verify(problem, text).first_error_char
            end = text.find(STEP_SEP, first)
            saved += len(text) + 1 - (end + 1 if end >= 0 else len(text))
    aurocs = {r: (float(roc_auc_score(labels, s)) if 0 < sum(labels) < n else float("nan"))
              for r, s in scores.items()}
    return IdealBounds(split, n, float(np.mean(labels)), saved / total, aurocs)


def main(argv: list[str] | None = None) -> None:
    """`python -m gcrm_kit.toyworld.ideal --params toy --splits id hard`: print the ideal bound facts of the world
    in a notebook-01 params file (a name under params/01_rm_training/ or a YAML path)."""
    ap = argparse.ArgumentParser(prog="python -m gcrm_kit.toyworld.ideal", description=main.__doc__)
    ap.add_argument("--params", default="toy")
    ap.add_argument("--splits", nargs="+", default=["id", "hard"])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    path = Path(a.params) if a.params.endswith((".yaml", ".yml")) else \
        project_root() / "params" / "01_rm_training" / f"{a.params}.yaml"
    world = load_params("01_rm_training", path).world
    print(f"{'split':<13}{'correct':>8}{'oracle':>8}  " + "  ".join(f"{r:>23}" for r in READERS))
    for split in a.splits:
        b = ideal_bounds(world, split, a.n, a.seed)
        print(f"{split:<13}{b.share_correct:>8.3f}{b.first_error_oracle_saving:>8.3f}  "
              + "  ".join(f"{b.confidence_auroc[r]:>23.3f}" for r in READERS))


if __name__ == "__main__":
    main()
