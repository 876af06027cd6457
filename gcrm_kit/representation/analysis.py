"""What every analysis of notebook 02 returns: an `Analysis` (its numbers and its figure), and the scorer name of
the reward head."""

from __future__ import annotations

from dataclasses import dataclass

HEAD = "head"
"""the scorer that reads the reward head at each token (`TokenValues.values("head")`); other scorers are
prototype names (their Q-values)"""


@dataclass
class Analysis:
    """One analysis: `data`, the JSON-able numbers it found, and `figure`, a plotly figure of them (None when the
    analysis was skipped)."""

    name: str
    data: dict
    figure: object = None
