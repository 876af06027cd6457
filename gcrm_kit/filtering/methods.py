"""The methods notebook 03 compares, by name, and the two sets of questions they run on.

- ``majority``: plain majority vote over all N samples (no pruning);
- ``q_goal`` / ``q_baseline``: pruning by Q_t = cos(h_t, g) of the goal-conditioned / the baseline reward model,
  each with the `correct` prototype of its own checkpoint;
- ``token_reward_goal`` / ``token_reward_baseline``: pruning by the scalar head applied at every token
  (early rejection with an outcome reward model);
- ``prm``: pruning at the end of the first step whose probability of being right, by the run's process reward
  model, falls below the threshold (`prm_pruning`; only when the notebook-01 run has one);
- ``random``: random pruning at the budget of ``q_goal`` (`RANDOM_MATCHED_TO`);
- ``best_of_n_<rm>``: the answer of the sample with the highest final reward;
- ``weighted_<rm>``: votes weighted by sigmoid(final reward).
"""

from __future__ import annotations

from .prm_pruning import PRM_METHOD, PRM_SCORER, STEP_SIGNAL

SETS = ("validation", "test")
"""thresholds are chosen on validation questions and every number is reported on test questions"""

PRUNING = {  # method -> (which reward model, which per-token signal)
    "q_goal": ("goal", "q"),
    "q_baseline": ("baseline", "q"),
    "token_reward_goal": ("goal", "token_reward"),
    "token_reward_baseline": ("baseline", "token_reward"),
}
PROCESS_PRUNING = {PRM_METHOD: (PRM_SCORER, STEP_SIGNAL)}
"""pruning by the process reward model's per-step probability, run when its scores are there"""


def pruning_methods(scores: dict, si: int) -> dict[str, tuple[str, str]]:
    """PRUNING, and PROCESS_PRUNING when `scores` ({(which, seed index): ...}) hold its reward model at `si`."""
    return {**PRUNING, **{m: ws for m, ws in PROCESS_PRUNING.items() if (ws[0], si) in scores}}


RANDOM_MATCHED_TO = "q_goal"
"""the pruning method whose budget random pruning spends"""

REWARD_MODELS = ("goal", "baseline")
"""the two reward models of every rm seed: the goal-conditioned one (`goal_rm`) and the baseline (`baseline_rm`)"""

METHOD_ORDER = ["majority", "q_goal", "q_baseline", "token_reward_goal", "token_reward_baseline", "prm", "random",
                "best_of_n_goal", "best_of_n_baseline", "weighted_goal", "weighted_baseline"]
"""the order of methods in summaries and tables"""

FRONTIER_ORDER = [
    "majority", "q_goal", "q_baseline", "token_reward_goal", "token_reward_baseline", "prm", "random",
    "best_of_n_goal",
    "best_of_n_baseline", "weighted_goal", "weighted_baseline", "deepconf_offline_lowest", "deepconf_offline_tail",
    "deepconf_online", "speculative_goal", "speculative_baseline", "esc", "adaptive_consistency", "probe"]
"""the methods of the accuracy-vs-compute frontier (`frontier`), in table order: the methods above, then
DeepConf offline (the most confident eta% of traces vote, weighted by confidence: lowest group or tail confidence)
and online (traces stop when their group confidence falls below a threshold set by warm-up traces), speculative
rejection with either reward model, early-stopping self-consistency, adaptive consistency and the probe on the
policy's hidden states"""
