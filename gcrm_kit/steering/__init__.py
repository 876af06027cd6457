"""Notebook 04_steering: steer a policy towards goal states with step-level guided beam search (PAPER.md section 4),
and compare it with plain sampling and best-of-N at matched compute on the same prompts.

A candidate step is scored by the policy's probability and by a goal term: the cosine between the reward model's
state, read in context, and goal prototypes built from labelled examples. Files, one job each:

- `goal.py`: the goal term G (`GoalTerm`) and the step score s = c^r p^(1-r) (`goal_ratio`, `step_log_score`);
- `steps.py`: what ends a step (`step_stop_ids`, `step_end_ids`) and sampling next steps (`sample_steps`);
- `context.py`: the reward model in context with its key/value cache (`ContextScorer`, `RMState`), and the toy
  world's exact process value in its place (`ExactPrefixScorer`, `exact_goal`);
- `beam.py`: the beam search (`Beam`, `select_beams`, `guided_decode`, `decode_in_batches`, `format_trace`);
- `prm_guide.py`: the run's process reward model as the search's guide (`PRMStepScorer`, `prm_goal`): its
  probability that a candidate step is right in the goal term's place (`guided_prm`);
- `baselines.py`: whole sampled solutions, read by a reward model, and the best-of-N pick;
- `judges.py`: the judge registry (`register_judge`, `get_judge`, the toy world's `exact` judge), `CachedJudge`,
  attribute rates and the rating labels of real data; `proxy_judge.py`: the `rm_proxy` judge;
- `setup.py`: `SteeringSetup` and `prepare` (RM run, reward models by name or role, prompts, labelled examples,
  toy world and real data);
- `labels.py`: the labels prototypes are built from (`label_table`, `label_counts`), judged once per run;
- `prototypes.py`: prototypes per reward model (`build_prototypes`), goal terms of the targets, diagnostics;
- `walkthrough.py`: the cache check and the worked example the notebook prints;
- `compare.py`: every method on the same prompts (`compare_methods`) and the gains of guided decoding;
- `report.py`: the result, its summary over seeds, the tables, metrics.json (`write_metrics`), the figures saved;
- `figures.py`: the plotly figures.

The notebook calls, in order: `prepare`, `label_table`, `attribute_overview`, `build_prototypes`, `goal_terms`,
`prototype_diagnostics`, `worked_example`, `check_cache`, `compare_methods`, `write_metrics`, `save_figures` and
the tables. Nothing here needs a paid service unless a judge that calls one is registered.
"""

from .baselines import Sampled, pick, read_final_states, sample_solutions, score_samples
from .beam import Beam, Decoded, decode_in_batches, format_trace, guided_decode, select_beams
from .compare import Timer, compare_methods, guided_gains
from .context import ContextScorer, ExactPrefixScorer, RMState, exact_goal
from .figures import steering_compute, steering_gains, steering_rates
from .goal import GoalTerm, goal_ratio, step_log_score
from .judges import (JUDGES, CachedJudge, Judge, attribute_rates, exact_toy_judge, get_judge, in_set, rating_labels,
                     register_judge)
from .labels import judge_attributes, label_counts, label_table
from .prm_guide import PRMStepScorer, find_guide, prm_goal
from .prototypes import build_prototypes, goal_terms, prototype_diagnostics, target_rating
from .proxy_judge import RewardModelProxyJudge
from .report import (HELPSTEER_DESCRIPTIONS, METHOD_ORDER, SteeringResult, attribute_overview, diagnostics_table,
                     gains_table, has_attribute, reported_attributes, results_table, save_figures, summarise,
                     write_metrics)
from .setup import SteeringSetup, prepare
from .steps import Step, sample_steps, step_end_ids, step_stop_ids
from .walkthrough import check_cache, worked_example

__all__ = [
    "HELPSTEER_DESCRIPTIONS", "JUDGES", "METHOD_ORDER", "Beam", "CachedJudge", "ContextScorer", "Decoded",
    "ExactPrefixScorer", "GoalTerm", "Judge", "PRMStepScorer", "RMState", "RewardModelProxyJudge", "Sampled",
    "SteeringResult", "SteeringSetup", "Step", "Timer", "attribute_overview", "attribute_rates", "build_prototypes",
    "check_cache", "compare_methods", "decode_in_batches", "diagnostics_table", "exact_goal", "exact_toy_judge",
    "find_guide", "format_trace", "gains_table", "get_judge", "goal_ratio", "goal_terms", "guided_decode",
    "guided_gains", "has_attribute", "in_set", "judge_attributes", "label_counts", "label_table", "pick", "prepare",
    "prm_goal", "prototype_diagnostics", "rating_labels", "read_final_states", "register_judge", "reported_attributes",
    "results_table", "sample_solutions", "sample_steps", "save_figures", "score_samples", "select_beams",
    "step_end_ids", "step_log_score", "step_stop_ids", "steering_compute", "steering_gains", "steering_rates",
    "summarise", "target_rating", "worked_example", "write_metrics",
]
