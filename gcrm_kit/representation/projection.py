"""2-D maps of token states: the response-token states of a few solutions projected by PCA, t-SNE or UMAP (when
installed), with the prototype among them."""

from __future__ import annotations

import numpy as np

from ..io import to_jsonable
from ..qvalues import Prototype, TokenValues
from . import figures
from .analysis import Analysis


def umap_available() -> bool:
    """Whether umap-learn can be imported here."""
    try:
        import umap  # noqa: F401
    except Exception:  # not installed, or broken by its numba dependency
        return False
    return True


def project(points: np.ndarray, method: str, seed: int, perplexity: float = 30.0) -> tuple[np.ndarray, dict]:
    """2-D coordinates (M, 2) of `points` (M, D) by `method` (`pca`, `tsne`, `umap`) and what the method reports
    (PCA: explained variance ratios)."""
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        xy = pca.fit_transform(points)
        return xy, {"explained_variance_ratio": pca.explained_variance_ratio_.tolist()}
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(perplexity, max(2.0, (len(points) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(points), \
            {"perplexity": perp}
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(points), {}
    raise ValueError(f"unknown projection {method!r}; expected 'pca', 'tsne' or 'umap'")


def projections(values: dict[str, list[TokenValues]], prototypes: dict[str, list[dict[str, Prototype]]],
                labels: np.ndarray, scorer: str, methods: list[str], n_sequences: int, seed: int = 0,
                perplexity: float = 30.0) -> dict[str, Analysis]:
    """2-D maps of the response-token states of `n_sequences` solutions (half correct where possible), one map
    per reward model (its first seed), coloured by the solution's correctness, the token's relative position and
    its value of `scorer` (Q: cosine to the prototype). The prototype itself is projected with the points (a
    star). Returns {method: Analysis}; `umap` is skipped, with a note, when umap-learn is not installed."""
    labels = np.asarray(labels, dtype=bool)
    rng = np.random.default_rng([seed, 25])
    good, bad = np.flatnonzero(labels), np.flatnonzero(~labels)
    n_bad = min(len(bad), n_sequences // 2)
    n_good = min(len(good), n_sequences - n_bad)
    n_bad = min(len(bad), n_sequences - n_good)
    rows = np.sort(np.concatenate([rng.permutation(good)[:n_good], rng.permutation(bad)[:n_bad]])).astype(int)
    out: dict[str, Analysis] = {}
    for method in methods:
        if method == "umap" and not umap_available():
            out[method] = Analysis("projection_umap", {"skipped": "umap-learn is not installed"}, None)
            continue
        maps = {}
        for rm, tvs in values.items():
            tv = tvs[0]
            if tv.hidden is None:
                raise ValueError(f"{rm}: token values were read without hidden states (keep_hidden=False)")
            pts, seq, pos, q, toks = [], [], [], [], []
            for i in rows:
                h = tv.hidden[i][1:]  # response tokens and EOS (column 0 is the prompt's last token)
                pts.append(h)
                seq += [int(i)] * len(h)
                pos += list(np.arange(1, len(h) + 1) / len(h))
                q += tv.row(scorer, i)[1:].tolist()
                toks += list(tv.tokens[i])
            P = np.concatenate(pts)
            extra = []
            if scorer in prototypes[rm][0]:
                extra = [prototypes[rm][0][scorer].vector.float().numpy()]
            xy, info = project(np.concatenate([P, *[e[None] for e in extra]]) if extra else P, method, seed,
                               perplexity)
            maps[rm] = {"x": xy[: len(P), 0].tolist(), "y": xy[: len(P), 1].tolist(),
                        "correct": labels[seq].tolist(), "position": pos, "value": q, "sequence": seq,
                        "token": toks, "prototype_xy": xy[len(P)].tolist() if extra else None, **info}
        data = {"method": method, "scorer": scorer, "n_sequences": int(len(rows)), "maps": maps}
        data = to_jsonable(data)
        out[method] = Analysis(f"projection_{method}", data, figures.projection(data))
    return out
