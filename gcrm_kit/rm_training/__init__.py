"""Stage of notebook 01_rm_training: the data (toy world or real sets), preference pairs, reward-model training and
evaluation. The notebook calls these steps in turn; it is the one way to run them all (`gcrm run` executes it
through papermill).

Files and their jobs:

- `world.py`: `RMData` (what reward models train and are evaluated on) built from the toy world or real data,
  screened and saved into the run folder;
- `screening.py`: what training would refuse (empty or identical sides, too long), left out and counted by reason;
- `pairs.py`: one (correct, incorrect) pair per question, and the held-out split;
- `fit.py`: the training body of one reward model (in this process or every launched one);
- `finish.py`: after training, the checkpoint check, the `correct` prototype and the DONE mark;
- `evaluate.py`: held-out pairwise accuracy and AUROC per split of one trained model, the reward read at the EOS
  and at the response's last token;
- `train.py`: one model in-process or through the launcher, and every model x seed x data size with metrics.json;
- `report.py`: summaries over seeds, the data-size curve, skip counts, `write_metrics`, `save_figures`, the table;
- `process_data.py`: the process reward models' stepwise examples (verifier or Monte-Carlo labels, or a TRL
  stepwise file) and what labelling them cost;
- `process_fit.py`: one process reward model trained, checked against its saved checkpoint, and evaluated;
- `best_of_n.py`: the best-of-n curve with each reward model as the judge and the verifier as the gold;
- `policy_tables.py`: tables about the policy the reward models start from;
- `bounds.py`: the facts that bound every filtering and steering method on the world and its policy, per split;
- `figures.py`: the notebook's plotly figures;
- `accelerator.py`: handing GPU memory back between steps;
- `worker.py`: what each process of a launched training run executes (``python -m gcrm_kit.rm_training.worker``).
"""

from .accelerator import release_accelerator_memory
from .best_of_n import BestOfN
from .best_of_n import measure as measure_best_of_n
from .bounds import finished_flags, world_bounds_of, world_bounds_table
from .evaluate import evaluate_reward_model, warn_chance_level
from .finish import DONE, check_saved_rewards, finish_reward_model
from .fit import PROBE_PAIRS, fit_reward_model, reward_training_args
from .pairs import build_pairs, split_heldout
from .policy_tables import policy_accuracy_table, policy_attempts_table, policy_verdict_table
from .report import (RMTrainingResult, data_size_curve, process_labels_table, results_table, save_figures,
                     skip_counts, summarise, write_metrics)
from .screening import describe_skips, merge_skips, screen_pairs, screen_records, screening_tokenizer
from .train import reward_model_dir, subset_params, train_and_evaluate, train_one_reward_model
from .world import RMData, build_real_world, build_toy_world, build_world, save_world, screen_world

__all__ = [
    "DONE", "PROBE_PAIRS", "BestOfN", "RMData", "RMTrainingResult", "build_pairs", "build_real_world",
    "build_toy_world", "build_world", "check_saved_rewards", "data_size_curve", "describe_skips",
    "evaluate_reward_model", "finish_reward_model", "finished_flags", "fit_reward_model", "measure_best_of_n",
    "merge_skips",
    "policy_accuracy_table", "policy_attempts_table", "policy_verdict_table", "process_labels_table",
    "release_accelerator_memory",
    "results_table", "reward_model_dir", "reward_training_args", "save_figures", "save_world", "screen_pairs",
    "screen_records", "screen_world", "screening_tokenizer", "skip_counts", "split_heldout", "subset_params",
    "summarise", "train_and_evaluate", "train_one_reward_model", "warn_chance_level", "world_bounds_of",
    "world_bounds_table", "write_metrics",
]
