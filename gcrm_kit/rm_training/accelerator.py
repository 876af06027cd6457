"""Handing accelerator memory back between the steps of notebook 01: models this process loaded for answering,
scoring or prototypes are released before the next step (or a launched training run) needs the GPU."""

from __future__ import annotations

import gc

import torch


def release_accelerator_memory() -> None:
    """Collect unreferenced models (reference cycles included) and hand the CUDA allocator's cached blocks back,
    so launched training processes find the GPU memory this process used for generation and scoring free. Without
    CUDA there is nothing to hand back (a model's memory goes with its last reference, or at the collector's next
    pass), so the full collection, which walks every object of the process, is skipped."""
    if not torch.cuda.is_available():
        return
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
