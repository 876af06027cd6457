"""Real datasets through Hugging Face `datasets`, adapted into the kit's schema (`PreferencePair`, `GenerationRecord`).

A `params.DatasetSpec` names an adapter and a source: a hub dataset id, or a local file or folder (JSON lines,
optionally gzipped, JSON, Parquet, CSV, or a folder saved with `save_to_disk`), so the same params run offline from
files. Adapters and what they make:

- pairs (`pairs.py`): `openmathinstruct` (OpenMathInstruct-1: a correct and an incorrect solution of the same
  question, as the paper pairs them), `hh_rlhf` (Anthropic HH-RLHF: the dialogues' shared prefix becomes the
  prompt, so the contrastive positions fall in the responses only), `pairs` (columns prompt / chosen / rejected);
- generation records with correctness (`records.py`): `records` (prompt / response / is_correct),
  `gsm8k_model_solutions` (OpenAI's grade-school-math model samples: one record per solution),
  `openmathinstruct_records`, and `helpsteer` (responses with attribute ratings, for labelled sets
  (`helpsteer_sets`) that become prototypes);
- solutions labelled step by step (`stepwise.py`; records whose meta holds the steps and the first wrong step):
  `processbench` (ProcessBench: id / problem / steps / label), `trl_stepwise` (TRL's stepwise supervision: prompt /
  completions / labels), and the writers `write_processbench` (with a reader's predictions) and
  `write_trl_stepwise`;
- benchmark problems (`problems.py`; question + reference answer; the backbone answers them greedily and
  `answers_match` labels the answers): `gsm8k`, `math`, `gsm_hard`, `svamp`, `asdiv`, `qa` (question /
  expected_answer, the format of the algebra222, MAWPS and other OOD sets in NeMo-Skills).

Bad input is never coerced. A source that cannot be read, or lacks a column an adapter needs, is a `DataError`
naming the source and column; JSON that does not parse, the file and line; a row whose field is missing, null or of
the wrong type (a correctness label that is not true/false or 1/0, a rating that is not an integer 0-4, a problem
without a reference answer, steps that are not a non-empty list of non-empty strings, step labels that do not fit
the steps), the file, row and key. Rows an adapter cannot use for a stated reason are left out and counted by reason
in the returned list's `stats` (and logged with their row numbers).

Modules: `loading` (rows and where each sits), `rows` (checked fields, counts of rows left out), `answers` (answer
extraction and matching), `records`, `pairs`, `problems`, `stepwise` (the adapters; `stepwise` also the writers),
`adapters` (the registry, `load_adapted`), `chat` (chat templates, answering benchmark problems).
"""

from .adapters import ADAPTERS, Adapter, load_adapted
from .answers import answers_match, extract_answer, extract_boxed, normalize_answer
from .chat import answer_problems, apply_chat_template, render_prompt
from .loading import LOCAL_BUILDERS, load_rows, require_columns, row_place
from .pairs import (ASSISTANT, HUMAN, generic_pairs, hh_rlhf_pairs, openmathinstruct_pairs, pair_records,
                    split_dialogue, split_shared_prefix)
from .problems import (asdiv_problems, gsm8k_problems, gsm_hard_problems, math_problems, qa_problems,
                       svamp_problems)
from .records import (GSM8K_SOLVERS, HELPSTEER_ATTRIBUTES, generic_records, gsm8k_model_solutions,
                      helpsteer_records, helpsteer_sets, openmathinstruct_records)
from .rows import Adapted
from .stepwise import (STEP_JOIN, first_wrong_step, processbench_records, trl_stepwise_records, write_processbench,
                       write_trl_stepwise)

__all__ = [
    "ADAPTERS", "ASSISTANT", "Adapted", "Adapter", "GSM8K_SOLVERS", "HELPSTEER_ATTRIBUTES", "HUMAN",
    "LOCAL_BUILDERS", "STEP_JOIN", "answer_problems", "answers_match", "apply_chat_template", "asdiv_problems",
    "extract_answer", "extract_boxed", "first_wrong_step", "generic_pairs", "generic_records",
    "gsm8k_model_solutions", "gsm8k_problems", "gsm_hard_problems", "helpsteer_records", "helpsteer_sets",
    "hh_rlhf_pairs", "load_adapted", "load_rows", "math_problems", "normalize_answer", "openmathinstruct_pairs",
    "openmathinstruct_records", "pair_records", "processbench_records", "qa_problems", "render_prompt",
    "require_columns", "row_place", "split_dialogue", "split_shared_prefix", "svamp_problems",
    "trl_stepwise_records", "write_processbench", "write_trl_stepwise",
]
