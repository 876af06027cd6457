"""Stage of notebook 02_representation_analysis: what the reward models' hidden states say, token by token.

Every analysis takes per-token values read in one forward pass per sequence (`gcrm_kit.qvalues.token_values`) and
returns an `Analysis`: the numbers (JSON-able, what metrics.json records) and a plotly figure. The notebook calls
the steps in this order; it is the one orchestration path (`gcrm run` executes it through papermill).

- `inputs.py`: find the notebook-01 run through `gcrm_kit.rm_runs`, pick its reward models (names or roles) and
  load the labelled solutions with the token of each one's first wrong step (`load_inputs`, `inputs_summary`);
- `readout.py`: read the reward models on the params' device: build and save the prototypes, read every token's
  values (`read_reward_models`, `prototype_table`);
- `examples.py`: single solutions: which to show, their value curves and shaded text (`choose_examples`,
  `example_curves`, `token_view`);
- `curves.py`: the partial-sequence AUROC with bootstrap intervals and the mean curves, correct vs incorrect
  (`partial_auroc`, `at_fraction`, `mean_curves`);
- `localisation.py`: does a curve drop at the first wrong step, against chance and a control
  (`error_localisation`);
- `correlations.py`: values part-way against the final reward, the paper's Table 13 (`reward_correlations`);
- `projection.py`: 2-D maps of token states, PCA / t-SNE / UMAP (`projections`);
- `report.py`: analyses and figures saved in the run folder, metrics.json (`write_metrics`), the side-by-side
  table (`comparison_table`);
- `steps.py`: every per-step reader (process reward models, Q-values, reward heads, the policy's confidence) at
  each step, scored by ProcessBench's metric, and the PRMs' per-token analyses (`read_step_readers`,
  `step_analyses`, `processbench_table`);
- `figures.py`: the plotly figures and the token shading; `analysis.py`: `Analysis` and the `HEAD` scorer.
"""

from .analysis import HEAD, Analysis
from .correlations import reward_correlations
from .curves import at_fraction, mean_curves, partial_auroc
from .examples import choose_examples, example_curves, token_view
from .inputs import RepresentationInputs, inputs_summary, load_inputs
from .localisation import error_localisation
from .projection import projections
from .readout import Readout, prototype_table, read_reward_models
from .report import comparison_table, save_analyses, save_token_views, summarise, write_metrics
from .steps import StepReaders, processbench_table, read_step_readers, step_analyses

__all__ = ["HEAD", "Analysis", "RepresentationInputs", "Readout", "StepReaders", "at_fraction", "choose_examples",
           "comparison_table", "error_localisation", "example_curves", "inputs_summary", "load_inputs", "mean_curves",
           "partial_auroc", "processbench_table", "projections", "prototype_table", "read_reward_models",
           "read_step_readers", "step_analyses", "reward_correlations",
           "save_analyses", "save_token_views", "summarise", "token_view", "write_metrics"]
