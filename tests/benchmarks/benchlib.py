"""Small helpers shared by the benchmark scripts in this folder (not collected by pytest).

- `RssSampler`: peak resident set size of this process while a block runs, sampled every millisecond;
- `spread`: median and spread (quartiles, min, max) of repeated timings;
- `machine`: a one-line description of the machine a benchmark ran on;
- `on_each_step`: call a function at every decoding step of the kit's cached loops while a block runs;
- `report`: print a benchmark's JSON result and write it to a file when one is given.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from contextlib import contextmanager
from pathlib import Path


class RssSampler:
    """Samples this process's resident set size every millisecond in a thread while the `with` block runs.

    `start` (bytes) is the size at entry, `peak` the highest sample, `peak_rise` the difference: what the block
    added on top of what the process already held."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.001)

    def reset(self) -> None:
        """Start over from now: `start` and `peak` become the current size (to measure a later phase alone)."""
        self.start = self.peak = self._proc.memory_info().rss

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_rise(self) -> int:
        return self.peak - self.start


def spread(values: list[float]) -> dict:
    """Median, quartiles, min, max and count of `values` (a list of floats) as a dict of floats."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"median": float("nan"), "q1": float("nan"), "q3": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


def machine(threads: int | None = None, device: str = "cpu") -> str:
    """'<processor>, <n> cpus, threads=<t>, device=<d>' for the machine running the benchmark."""
    t = f", threads={threads}" if threads is not None else ""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus{t}, device={device}"


@contextmanager
def on_each_step(record):
    """While the block runs, every `PolicyStepper.step(tok)` of the kit's cached decoding loops first calls
    `record(stepper, tok)` (the stepper's cache and mask are those before the step)."""
    from gcrm_kit.filtering.cached_decoding import PolicyStepper

    step = PolicyStepper.step

    def recording(self, tok):
        record(self, tok)
        return step(self, tok)
    PolicyStepper.step = recording
    try:
        yield
    finally:
        PolicyStepper.step = step


def report(out: dict, path: str | None) -> dict:
    """Print `out` as indented JSON and, when `path` is given, write it there too; returns `out`."""
    text = json.dumps(out, indent=1)
    print(text)
    if path:
        Path(path).write_text(text)
    return out
