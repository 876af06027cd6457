"""Stage of notebook 03_filtering: filtering during majority voting with Q-values (PAPER.md section 4).

N solutions are sampled per question and voted over. A reward model reads every solution token by token; a
solution is pruned at the first token (after the first k) whose score falls below a threshold tau, and the
tokens it would still have produced count as saved. The paper computed that saving after the fact on finished
generations (offline); this package does that exactly, and also prunes ONLINE: samples are stopped while they
are generated, and the tokens actually generated and the wall-clock time are measured. Every method (see
`methods`) runs on the same samples; each pruning method's threshold is chosen on validation questions and
reported on test questions, for every reward-model seed of the notebook-01 run.

The notebook's steps, in its order, one file each:

- setup.py: the notebook-01 run and its goal-conditioned and baseline reward models (by name or role);
- samples.py: `SampleSet`, the samples of one set grouped by question and coded for voting; their summary;
- sampling.py: where samples come from (the toy world, a real-data run's evaluation set, a file), split into
  validation and test questions;
- scoring.py: per-token Q-values, token rewards and final rewards of every sample;
- voting.py: vote credit with its tie rule, the winning answer, best-of-N and reward-weighted credit;
- pruning.py: the pruning rule (positions), the threshold grid and its choice, random pruning at a matched budget,
  token accounting and statistics of one pruning decision;
- offline.py: every method on the finished samples (`evaluate_offline`);
- prm_pruning.py: the run's process reward model, when it has one, as a pruning method (`prm`): its per-step
  probabilities at each step's end, pruned by the same rule at a threshold chosen the same way;
- noise.py, scorers.py, decoding.py: per-sample sampling noise, online scorers, generation that prunes while it
  generates; cached_decoding.py: the same in one decoding loop from the policy's key/value cache;
- online.py: online pruning and its measured cost (`evaluate_online`);
- bounds.py: the facts that bound every method on the test samples (`world_bounds_of`);
- the accuracy-vs-compute frontier: cost.py (the FLOP model and parameter counts), deepconf.py, speculative.py,
  consistency.py (ESC, adaptive consistency), probe.py (the field's early-stopping methods, each on the same
  samples), operating.py (one operating point's accuracy and cost, the choice on validation), frontier_inputs.py
  (`prepare_frontier`), frontier.py (`evaluate_frontier`), frontier_tables.py, sequential_online.py (ESC and adaptive
  consistency run for real in the generation loop), continuous_decoding.py (drawing on demand in one continuous
  batch), order_spread.py (the sequential methods over many draw orders);
- report.py: summary over rm seeds, tables, metrics.json (`write_metrics`), figures; `finish` saves them all;
- figures.py: the frontier, Q-value traces and online-cost figures;
- methods.py: the methods' names and the two sets.
"""

from .bounds import world_bounds_of
from .decoding import PrunedGeneration, generate_pruned
from .cached_decoding import PolicyStepper, decode_pruned
from .cost import Spend, checkpoint_params, count_params, flops
from .figures import compute_frontier, filtering_frontier, online_cost, qvalue_traces, trace_figure
from .frontier import FrontierResult, evaluate_frontier
from .frontier_inputs import FrontierInputs, prepare_frontier
from .frontier_tables import frontier_seed_table, frontier_table, oracle_table, order_spread_table
from .order_spread import order_spread
from .sequential_online import attach_online, sequential_online
from .methods import FRONTIER_ORDER, METHOD_ORDER, PRUNING, RANDOM_MATCHED_TO, REWARD_MODELS, SETS
from .noise import PerSampleGumbel, hashed_uniform
from .offline import OfflineResult, evaluate_offline, signal_auroc
from .online import evaluate_online, online_possible
from .pruning import (choose_threshold, evaluate_pruning, first_below, min_after, prune_positions,
                      pruning_statistics, random_matched, threshold_grid)
from .report import (FilteringResult, finish, online_table, per_question_table, results_table, save_figures,
                     signal_table, statistics_table, summarise, write_metrics)
from .samples import SampleSet, ends_with_eos, make_sample_set, sample_summary
from .sampling import build_samples, sample_real, sample_toy, split_generations, toy_questions
from .scorers import CutScorer, RewardModelScorer
from .scoring import SampleScores, score_all, score_sample_set
from .setup import RMSetup, load_setup
from .voting import best_of_n_credit, vote_credit, vote_winner, weighted_credit

__all__ = [
    "CutScorer", "FRONTIER_ORDER", "FilteringResult", "FrontierInputs", "FrontierResult", "METHOD_ORDER",
    "OfflineResult", "PRUNING", "PerSampleGumbel", "PolicyStepper", "PrunedGeneration", "RANDOM_MATCHED_TO",
    "REWARD_MODELS", "RMSetup", "RewardModelScorer", "SETS", "SampleScores", "SampleSet", "Spend", "attach_online",
    "best_of_n_credit", "build_samples", "checkpoint_params", "choose_threshold", "compute_frontier", "count_params",
    "decode_pruned", "ends_with_eos", "evaluate_frontier", "evaluate_offline", "evaluate_online", "evaluate_pruning",
    "filtering_frontier", "finish", "first_below", "flops", "frontier_seed_table", "frontier_table",
    "generate_pruned", "hashed_uniform", "load_setup", "make_sample_set", "min_after", "online_cost",
    "online_possible", "online_table", "oracle_table", "order_spread", "order_spread_table", "per_question_table",
    "prepare_frontier", "prune_positions",
    "pruning_statistics", "qvalue_traces", "random_matched", "results_table", "sample_real", "sample_summary",
    "sample_toy", "save_figures", "score_all", "score_sample_set", "sequential_online", "signal_auroc",
    "signal_table", "split_generations", "statistics_table", "summarise", "threshold_grid", "toy_questions",
    "trace_figure", "vote_credit", "vote_winner", "weighted_credit", "world_bounds_of", "write_metrics",
]
