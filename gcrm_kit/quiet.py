"""Third-party output that is noise to a reader of an executed notebook, silenced once when the kit is imported.

- bitsandbytes warns on import that it cannot load an optional CPU kernel package (`kernels`) and falls back to
  its own CPU code; the results are the same, and the warning lands as a red stderr box in every notebook.
- transformers draws a "Loading weights" progress bar for every `from_pretrained`; a notebook that loads one
  reward model per seed shows dozens of them. The kit's own progress bars (sampling, scoring, training) stay.
"""

from __future__ import annotations

import logging

BITSANDBYTES_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"


def quiet_third_party() -> None:
    """Silence the messages listed in the module docstring. Errors still show."""
    logging.getLogger(BITSANDBYTES_CPU_LOGGER).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
