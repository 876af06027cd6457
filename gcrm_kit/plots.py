"""What every notebook's figures share: saving a figure (HTML that opens offline, plus its JSON) and the colours.
Each stage draws its own figures in `<stage>/figures.py`; no figure is drawn by code living in a notebook."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from .io import atomic_write_text


def save_figure(fig: go.Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.html` (plotly.js in a shared file beside it, so it opens offline) and `<stem>.json`."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory")
    js = atomic_write_text(stem.with_suffix(".json"), fig.to_json())
    return html, js


# ------------------------------------------------------------------------------------------------ colours

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
"""one colour per line (reward model), in order"""


def _rgba(hex_color: str, alpha: float) -> str:
    """`#rrggbb` with an opacity, as plotly's `rgba(r,g,b,a)` (for bands around a line of that colour)."""
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"
