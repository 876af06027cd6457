"""Stage of notebook 02_representation_analysis: what the reward models' hidden states say, token by token.

Every analysis takes per-token values read in one forward pass per sequence (`qvalues.token_values`) and returns
an `Analysis`: the numbers (JSON-able, what metrics.json records) and a plotly figure drawn by `plots`.

- `partial_auroc`: AUROC for final correctness when each solution is scored after reading 0%, 10%, ..., 100% of
  it, by Q-value and by reward head, with 95% bootstrap intervals (the paper's partial-sequence figure);
- `mean_curves` / `example_curves`: Q-value along solutions, correct vs incorrect, with the first wrong step;
- `error_localisation`: how often a curve's largest drop falls at the first wrong step, against chance;
- `reward_correlations`: Q-value at 20/40/60/80% of a solution against its final reward (the paper's Table 13);
- `projections`: 2-D maps (PCA, t-SNE, UMAP when installed) of token states;
- `token_view`: one solution with each token shaded by its value, as inline HTML.

`analyse_representations(p)` runs them all headless. The notebook calls the steps one by one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from . import evaluation, plots
from .data import GenerationRecord, PreferencePair, load_jsonl
from .models import load_reward_model
from .params import RepresentationParams, RMTrainingParams
from .qvalues import (Prototype, TokenValues, list_prototypes, load_prototypes, pooled_states_many,
                      prototype_provenance, response_token_index, token_values)
from .runs import Run, seed_everything, start_run
from .io import to_jsonable

log = logging.getLogger(__name__)
HEAD = "head"


@dataclass
class Analysis:
    """One analysis: `data`, the JSON-able numbers it found, and `figure`, a plotly figure of them."""

    name: str
    data: dict
    figure: object = None


# ------------------------------------------------------------------------------------------------ inputs


@dataclass
class RepresentationInputs:
    """What the analyses read: the notebook-01 run, its reward models, and labelled sampled solutions.

    model_dirs: reward model name -> one checkpoint folder per seed of `rm_seeds`; records: the N analysed
    solutions; labels: (N,) bool, final answer correct; error_columns: (N,) the `TokenValues` column of the first
    wrong step's first token (state after reading it), -1 when the verifier found no wrong step."""

    rm_run_dir: Path
    rm_params: RMTrainingParams
    model_dirs: dict[str, list[Path]]
    rm_seeds: list[int]
    records: list[GenerationRecord]
    labels: np.ndarray
    error_columns: np.ndarray
    train_pairs: list[PreferencePair]
    tokenizer: object = None
    n_empty_skipped: int = 0


def first_error_columns(tokenizer, records: list[GenerationRecord], key: str = "first_error_char") -> np.ndarray:
    """(N,) the `TokenValues` column of each record's first wrong step: the record's `meta[key]` (a character
    offset in the response, as the toy verifier gives it) mapped through the tokenizer's offsets; -1 when absent."""
    out = np.full(len(records), -1, dtype=int)
    for i, r in enumerate(records):
        j = response_token_index(tokenizer, r.response, r.meta.get(key))
        if j is not None:
            out[i] = j + 1
    return out


def load_inputs(p: RepresentationParams, run: Run | None = None) -> RepresentationInputs:
    """Find the notebook-01 run (`p.rm_run`, or the newest made with `p.rm_params`, trained now if none), pick its
    reward models and seeds, and load `p.n_samples` of its evaluation samples of `p.split` (from the sample
    cache beside that run; sampled again only if the cache is gone). Writes inputs.json into `run`."""
    from transformers import AutoTokenizer

    from .rm_runs import eval_records_of_run, policy_dir_of, resolve_rm_run, select_reward_models

    rm_dir = Path(resolve_rm_run(p.rm_run, p.rm_params, p.output_root)).resolve()
    sel = select_reward_models(rm_dir, p.reward_models, p.rm_seeds)
    p01, seeds, model_dirs = sel.params, sel.seeds, sel.dirs
    names = list(model_dirs)
    for ds in model_dirs.values():
        for d in ds:
            if not (d / "config.json").is_file():
                raise FileNotFoundError(f"{d}: no reward-model checkpoint (config.json) there")
    first = model_dirs[names[0]][0]
    policy_dir = policy_dir_of(first)
    records = eval_records_of_run(rm_dir, p01, p.split, policy_dir)
    n_empty = sum(not r.response for r in records)
    records = [r for r in records if r.response]  # an empty response has no token to read a value at
    if not records:
        raise ValueError(f"no non-empty {p.split!r} evaluation samples in {rm_dir}")
    if p.n_samples and p.n_samples < len(records):
        keep = np.sort(np.random.default_rng([p.seed, 21]).choice(len(records), p.n_samples, replace=False))
        records = [records[i] for i in keep]
    tokenizer = AutoTokenizer.from_pretrained(first)
    labels = np.array([r.is_correct for r in records], dtype=bool)
    inputs = RepresentationInputs(rm_dir, p01, model_dirs, seeds, records, labels,
                                  first_error_columns(tokenizer, records),
                                  load_jsonl(rm_dir / "data" / "train_pairs.jsonl", PreferencePair), tokenizer,
                                  n_empty)
    if run is not None:
        run.write_json("inputs.json", inputs_summary(inputs, p))
    return inputs


def inputs_summary(inputs: RepresentationInputs, p: RepresentationParams) -> dict:
    """Where the inputs came from and how many there are (JSON-able)."""
    err = inputs.error_columns >= 0
    return {"rm_run": str(inputs.rm_run_dir), "split": p.split, "n_samples": len(inputs.records),
            "n_correct": int(inputs.labels.sum()), "share_correct": float(inputs.labels.mean()),
            "n_incorrect_with_first_error": int((~inputs.labels & err).sum()),
            "n_correct_with_a_wrong_step": int((inputs.labels & err).sum()),
            "rm_seeds": inputs.rm_seeds, "model_dirs": {k: [str(d) for d in v] for k, v in inputs.model_dirs.items()},
            "train_pairs": len(inputs.train_pairs), "empty_responses_skipped": inputs.n_empty_skipped}


# ------------------------------------------------------------------------------------------------ read the models


@dataclass
class Readout:
    """Per reward model name, one entry per seed: the prototypes built for it ({name: Prototype}) and the
    `TokenValues` of every analysed solution (Q-values towards each prototype, head values; the first seed's
    also keep the hidden states, for the 2-D maps)."""

    prototypes: dict[str, list[dict[str, Prototype]]]
    values: dict[str, list[TokenValues]]
    prototype_check: dict[str, float] = field(default_factory=dict)


def read_reward_models(p: RepresentationParams, run: Run, inputs: RepresentationInputs) -> Readout:
    """For every reward model and seed: build the prototypes of `p.prototypes` from the training pairs, save them
    with provenance under `<run>/reward_models/<model>/prototypes/`, load them back by name, and read the
    per-token values of every analysed solution in one forward pass per batch.

    `prototype_check` records, per model, the largest difference between the rebuilt `chosen`/`last` prototype
    and the one notebook 01 saved beside the checkpoint (0 up to float rounding: both see one format)."""
    prompts = [r.prompt for r in inputs.records]
    responses = [r.response for r in inputs.records]
    pairs = inputs.train_pairs
    protos: dict[str, list] = {}
    values: dict[str, list] = {}
    check: dict[str, float] = {}
    data_file = inputs.rm_run_dir / "data" / "train_pairs.jsonl"
    sides = {side: [x.chosen if side == "chosen" else x.rejected for x in pairs]
             for side in dict.fromkeys(s.responses for s in p.prototypes)}
    for name, dirs in inputs.model_dirs.items():
        for k, d in enumerate(dirs):
            model, tok = load_reward_model(d)
            out_dir = run.path("reward_models", d.name)
            for side, side_responses in sides.items():
                specs = [s for s in p.prototypes if s.responses == side]
                # every pooling of one data slice comes from the same forward pass
                states = pooled_states_many(model, tok, [x.prompt for x in pairs], side_responses,
                                            list(dict.fromkeys(s.pooling for s in specs)), p.batch_size, p.seed)
                for spec in specs:
                    prov = prototype_provenance(model, spec.pooling, len(pairs), p.seed, {
                        "checkpoint": str(d), "data": f"{side} responses of {data_file}", "data_slice": side})
                    proto = Prototype(spec.name, states[spec.pooling].mean(0), prov)
                    proto.save(out_dir)
                    if side == "chosen" and spec.pooling == "last" and "correct" in list_prototypes(d):
                        saved = Prototype.load(d, "correct")
                        if saved.provenance.get("pooling") == "last":
                            check[d.name] = float((saved.vector - proto.vector).abs().max())
            loaded = load_prototypes(out_dir, [s.name for s in p.prototypes])
            protos.setdefault(name, []).append(loaded)
            values.setdefault(name, []).append(token_values(
                model, tok, prompts, responses, loaded, batch_size=p.batch_size, keep_hidden=k == 0,
                desc=f"token values {d.name}"))
    return Readout(protos, values, check)


def prototype_table(readout: Readout):
    """One row per (model, seed, prototype) with its provenance (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for name, per_seed in readout.prototypes.items():
        for protos in per_seed:
            for pname, proto in protos.items():
                prov = proto.provenance
                rows.append({"model": Path(prov.get("checkpoint", name)).name, "prototype": pname,
                             "pooling": prov.get("pooling"), "data": prov.get("data_slice"),
                             "count": prov.get("count"), "layer": prov.get("layer"),
                             "norm": float(proto.vector.norm())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ AUROC


def auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of `scores` (..., N) for boolean `labels` (..., N), ties counted half (the Mann-Whitney
    form of the area, which equals scikit-learn's roc_auc_score). NaN where a row has one class only.

    Vectorised over rows so that thousands of bootstrap resamples cost one call."""
    labels = labels.astype(bool)
    ranks = stats.rankdata(scores, axis=-1)
    n1 = labels.sum(-1)
    n0 = labels.shape[-1] - n1
    u = (ranks * labels).sum(-1) - n1 * (n1 + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, n_bootstrap: int, seed: int, chunk: int = 100
                    ) -> np.ndarray:
    """Bootstrap AUROC of the seed mean: scores (S, F, N) of S reward-model seeds at F fractions over N samples.

    Each resample draws N samples with replacement, the same samples for every seed and fraction, and averages
    the S AUROCs. Returns (n_bootstrap, F)."""
    S, F, N = scores.shape
    rng = np.random.default_rng([seed, 22])
    out = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, N, size=(b, N))
        sc = scores[:, :, idx]  # (S, F, b, N)
        lab = np.broadcast_to(labels[idx], sc.shape)
        out.append(_nanmean0(auroc_rows(sc, lab)).T)  # (b, F)
    return np.concatenate(out)


def scores_at(values: list[TokenValues], scorer: str, fractions: list[float]) -> np.ndarray:
    """(S, F, N): the value of `scorer` after reading each fraction of each solution, for each seed."""
    return np.stack([np.stack([tv.at_fraction(scorer, f) for f in fractions]) for tv in values])


def partial_auroc(values: dict[str, list[TokenValues]], labels: np.ndarray, fractions: list[float],
                  scorers: list[str], n_bootstrap: int = 1000, seed: int = 0, show: list[str] | None = None
                  ) -> Analysis:
    """Partial-sequence AUROC for final correctness.

    For each reward model and scorer (a prototype's Q-value, or "head" for the reward head), each solution is
    scored after reading each fraction of its response (0 = the prompt's last token, 1 = the EOS, where the
    reward is read); AUROC per seed (scikit-learn), their mean and sample std over seeds, and a 95% bootstrap
    interval of the seed mean over the solutions. `show` picks the scorers drawn (default: all)."""
    labels = np.asarray(labels, dtype=bool)
    curves: dict = {}
    for rm, tvs in values.items():
        curves[rm] = {}
        for scorer in scorers:
            sc = scores_at(tvs, scorer, fractions)
            per_seed = [[evaluation.auroc(sc[s, f].tolist(), labels.tolist()) for f in range(len(fractions))]
                        for s in range(len(tvs))]
            arr = np.array(per_seed, dtype=float)
            boot = bootstrap_auroc(sc, labels, n_bootstrap, seed)
            with np.errstate(invalid="ignore"):
                lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0) if np.isfinite(boot).any() else (
                    np.full(len(fractions), np.nan), np.full(len(fractions), np.nan))
            curves[rm][scorer] = {
                "per_seed": arr.tolist(), "mean": _nanmean0(arr).tolist(), "seed_std": _nanstd0(arr).tolist(),
                "ci_low": np.asarray(lo).tolist(), "ci_high": np.asarray(hi).tolist()}
    data = {"fractions": list(fractions), "n": int(len(labels)), "n_correct": int(labels.sum()),
            "n_bootstrap": n_bootstrap, "curves": curves}
    return Analysis("partial_auroc", to_jsonable(data), plots.partial_auroc(data, show or scorers))


def at_fraction(data: dict, rm: str, scorer: str, fraction: float) -> dict:
    """One point of a `partial_auroc` result: {mean, seed_std, ci_low, ci_high, per_seed} at `fraction`."""
    fr = np.asarray(data["fractions"])
    k = int(np.argmin(np.abs(fr - fraction)))
    if abs(fr[k] - fraction) > 1e-9:
        raise KeyError(f"fraction {fraction} was not computed; have {data['fractions']}")
    c = data["curves"][rm][scorer]
    return {**{key: c[key][k] for key in ("mean", "seed_std", "ci_low", "ci_high")},
            "per_seed": [row[k] for row in c["per_seed"]]}


# ------------------------------------------------------------------------------------------------ curves


def mean_curves(values: dict[str, list[TokenValues]], labels: np.ndarray, scorer: str,
                fractions: list[float] | None = None) -> Analysis:
    """Mean value of `scorer` along solutions, by share of the response read, correct vs incorrect, per reward
    model (mean over samples, then over seeds; the band is the std over seeds)."""
    fractions = fractions if fractions is not None else [k / 20 for k in range(21)]
    labels = np.asarray(labels, dtype=bool)
    data: dict = {"fractions": fractions, "scorer": scorer, "curves": {}}
    for rm, tvs in values.items():
        sc = scores_at(tvs, scorer, fractions)  # (S, F, N)
        data["curves"][rm] = {}
        for name, mask in (("correct", labels), ("incorrect", ~labels)):
            m = sc[:, :, mask].mean(-1) if mask.any() else np.full(sc.shape[:2], np.nan)
            std = m.std(0, ddof=1) if len(tvs) > 1 else np.zeros_like(m[0])
            data["curves"][rm][name] = {"mean": m.mean(0).tolist(), "seed_std": std.tolist()}
    return Analysis("mean_curves", to_jsonable(data), plots.mean_curves(data))


def choose_examples(labels: np.ndarray, error_columns: np.ndarray, n: int, seed: int) -> list[int]:
    """Indices of `n` solutions to show: half incorrect with a located first error, the rest correct."""
    rng = np.random.default_rng([seed, 23])
    bad = np.flatnonzero(~labels & (error_columns >= 0))
    good = np.flatnonzero(labels)
    n_bad = min(len(bad), (n + 1) // 2)
    n_good = min(len(good), n - n_bad)
    return [int(i) for i in rng.permutation(bad)[:n_bad]] + [int(i) for i in rng.permutation(good)[:n_good]]


def example_curves(values: dict[str, list[TokenValues]], records: list[GenerationRecord], labels: np.ndarray,
                   error_columns: np.ndarray, index: list[int], scorer: str) -> Analysis:
    """Per-token curves of `scorer` for the solutions in `index`, one line per reward model (its first seed),
    with the first wrong step's first token marked."""
    examples = []
    for i in index:
        tv0 = next(iter(values.values()))[0]
        examples.append({
            "index": int(i), "prompt": records[i].prompt, "response": records[i].response,
            "is_correct": bool(labels[i]), "error_column": int(error_columns[i]),
            "tokens": ["⟨prompt⟩"] + list(tv0.tokens[i]),
            "values": {rm: tvs[0].row(scorer, i).tolist() for rm, tvs in values.items()}})
    data = {"scorer": scorer, "examples": examples}
    return Analysis("example_curves", to_jsonable(data), plots.example_curves(data))


# ------------------------------------------------------------------------------------------------ localisation


def largest_drops(tv: TokenValues, scorer: str) -> np.ndarray:
    """(N,) the column t in 1..L where reading token t lowered the value most (v[t-1] - v[t] largest)."""
    v = tv.values(scorer).astype(float)
    drops = v[:, :-1] - v[:, 1:]  # NaN past each row's end
    drops = np.where(np.isnan(drops), -np.inf, drops)
    return drops.argmax(1) + 1


def localisation_score(tv: TokenValues, scorer: str, error_columns: np.ndarray, rows: np.ndarray,
                       window: tuple[int, int]) -> dict:
    """Share of `rows` whose largest drop lies in [e + window[0], e + window[1]] (e: the first wrong step's
    column), and the chance share: what a drop placed uniformly at random over the row's L columns would get,
    |window within 1..L| / L, averaged over rows. Also the median offset of the drop from e."""
    lo, hi = window
    if len(rows) == 0:
        return {"hit_rate": float("nan"), "chance": float("nan"), "n": 0, "median_offset": float("nan")}
    drop = largest_drops(tv, scorer)[rows]
    e = error_columns[rows]
    L = tv.lengths[rows]
    hit = (drop >= e + lo) & (drop <= e + hi)
    covered = np.clip(np.minimum(e + hi, L) - np.maximum(e + lo, 1) + 1, 0, None)
    return {"hit_rate": float(hit.mean()), "chance": float((covered / L).mean()), "n": int(len(rows)),
            "median_offset": float(np.median(drop - e))}


def aligned_curve(tv: TokenValues, scorer: str, columns: np.ndarray, rows: np.ndarray, offsets: np.ndarray
                  ) -> np.ndarray:
    """Mean over `rows` of v[c + d] - v[c - 1] for each offset d: the value around column c relative to just
    before it (NaN where no row reaches)."""
    v = tv.values(scorer).astype(float)
    out = np.full(len(offsets), np.nan)
    if len(rows) == 0:
        return out
    c = columns[rows]
    base = v[rows, c - 1]
    for k, d in enumerate(offsets):
        col = c + d
        ok = (col >= 0) & (col <= tv.lengths[rows])
        if ok.any():
            out[k] = np.mean(v[rows[ok], col[ok]] - base[ok])
    return out


def matched_columns(tv: TokenValues, error_columns: np.ndarray, rows_bad: np.ndarray, rows_ctrl: np.ndarray,
                    seed: int = 0) -> np.ndarray:
    """Pseudo first-error columns for control solutions (`rows_ctrl`), matched to the real ones of `rows_bad`.

    Real first errors start at particular places (in the toy world, right after a step separator or at the start
    of the response). Each control solution gets one column whose preceding token is one that precedes a real first
    error (or the response start, when one does), picked nearest to a relative position drawn from the real errors'
    relative positions. Returns (N,) columns, -1 outside `rows_ctrl`."""
    rng = np.random.default_rng([seed, 24])
    out = np.full(len(tv), -1)
    if len(rows_ctrl) == 0:
        return out

    def before(i: int, c: int) -> str:
        return "\x00start" if c < 2 else tv.tokens[i][c - 2]

    if len(rows_bad):
        kinds = {before(i, int(error_columns[i])) for i in rows_bad}
        rel = error_columns[rows_bad] / tv.lengths[rows_bad]
    else:
        kinds, rel = set(), np.array([0.5])
    for i in rows_ctrl:
        L = int(tv.lengths[i])
        cols = np.arange(1, max(L, 2))  # any response token but the EOS
        ok = np.array([before(i, int(c)) in kinds for c in cols])
        cand = cols[ok] if ok.any() else cols
        target = rng.choice(rel) * L
        dist = np.abs(cand - target)
        out[i] = int(rng.choice(cand[dist == dist.min()]))
    return out


def error_localisation(values: dict[str, list[TokenValues]], labels: np.ndarray, error_columns: np.ndarray,
                       scorers: list[str], window: tuple[int, int] = (0, 5), seed: int = 0,
                       offsets: tuple[int, int] = (-8, 14)) -> Analysis:
    """Does a curve drop where the solution first goes wrong?

    Over incorrect solutions with a located first wrong step, per reward model and scorer (mean and std over
    seeds): the localisation score, how often the largest drop falls within `window` tokens of the step's first
    token; its chance level (a drop placed uniformly at random); and a control: the same score on correct solutions
    without any wrong step, at matched pseudo-error columns (`matched_columns`), i.e. how often a curve drops there
    anyway. Also the mean curve aligned at the first error beside the controls aligned at their pseudo-errors."""
    labels = np.asarray(labels, dtype=bool)
    rows_bad = np.flatnonzero(~labels & (error_columns >= 1))
    rows_ctrl = np.flatnonzero(labels & (error_columns < 0))
    pseudo = matched_columns(next(iter(values.values()))[0], error_columns, rows_bad, rows_ctrl, seed)
    d = np.arange(offsets[0], offsets[1] + 1)
    data: dict = {"window": list(window), "n_incorrect_located": int(len(rows_bad)),
                  "n_control": int(len(rows_ctrl)), "offsets": d.tolist(), "scores": {}, "aligned": {}}
    for rm, tvs in values.items():
        data["scores"][rm], data["aligned"][rm] = {}, {}
        for scorer in scorers:
            per = [localisation_score(tv, scorer, error_columns, rows_bad, window) for tv in tvs]
            ctrl = [localisation_score(tv, scorer, pseudo, rows_ctrl, window) for tv in tvs]
            hm, hs, _ = evaluation.mean_std([x["hit_rate"] for x in per])
            cm, _, _ = evaluation.mean_std([x["chance"] for x in per])
            km, ks, _ = evaluation.mean_std([x["hit_rate"] for x in ctrl])
            data["scores"][rm][scorer] = {
                "hit_rate": hm, "hit_rate_std": hs, "chance": cm,
                "lift": hm / cm if cm and cm == cm else float("nan"),
                "control_hit_rate": km, "control_hit_rate_std": ks,
                "per_seed": [x["hit_rate"] for x in per],
                "median_offset": float(np.median([x["median_offset"] for x in per])), "n": per[0]["n"]}
            bad = _nanmean0([aligned_curve(tv, scorer, error_columns, rows_bad, d) for tv in tvs])
            good = _nanmean0([aligned_curve(tv, scorer, pseudo, rows_ctrl, d) for tv in tvs])
            data["aligned"][rm][scorer] = {"incorrect": bad.tolist(), "correct": good.tolist()}
    data = to_jsonable(data)
    return Analysis("error_localisation", data, plots.error_localisation(data, scorers))


def _nanmean0(arrays) -> np.ndarray:
    """Mean over the first axis ignoring NaNs; NaN (without a warning) where every entry is NaN."""
    a = np.asarray(arrays, dtype=float)
    n = (~np.isnan(a)).sum(0)
    return np.where(n > 0, np.nansum(a, 0) / np.maximum(n, 1), np.nan)


def _nanstd0(arrays) -> np.ndarray:
    """Sample std (ddof 1) over the first axis ignoring NaNs: 0 for a single value, NaN for none."""
    a = np.asarray(arrays, dtype=float)
    n = (~np.isnan(a)).sum(0)
    dev = np.where(np.isnan(a), 0.0, a - _nanmean0(a))
    var = (dev ** 2).sum(0) / np.maximum(n - 1, 1)
    return np.where(n > 0, np.sqrt(var), np.nan)


# ------------------------------------------------------------------------------------------------ correlations


def reward_correlations(values: dict[str, list[TokenValues]], fractions: list[float], scorers: list[str]
                        ) -> Analysis:
    """Correlation, over solutions, between a scorer's value after reading each fraction of the response and the
    final reward (the head at the EOS): Pearson r and Spearman rho per seed, then mean and std over seeds."""
    data: dict = {"fractions": list(fractions), "correlations": {}}
    for rm, tvs in values.items():
        data["correlations"][rm] = {}
        for scorer in scorers:
            entry = {}
            for kind, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
                per = np.array([[_corr(fn, tv.at_fraction(scorer, f), tv.rewards) for f in fractions]
                                for tv in tvs])
                entry[kind] = {"mean": _nanmean0(per).tolist(), "seed_std": _nanstd0(per).tolist(),
                               "per_seed": per.tolist()}
            data["correlations"][rm][scorer] = entry
    data = to_jsonable(data)
    return Analysis("reward_correlations", data, plots.reward_correlations(data, scorers))


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")  # undefined for a constant input
    return float(fn(x, y)[0])


# ------------------------------------------------------------------------------------------------ projections


def umap_available() -> bool:
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
        out[method] = Analysis(f"projection_{method}", data, plots.projection(data))
    return out


# ------------------------------------------------------------------------------------------------ token view


def token_view(values: dict[str, list[TokenValues]], records: list[GenerationRecord], labels: np.ndarray,
               error_columns: np.ndarray, index: int, scorers: list[str]) -> plots.TokenShading:
    """One solution with each response token shaded by its value: one row per reward model (first seed) and
    scorer. Each row's colour scale spans the 5th-95th percentile of that model's values over all analysed
    tokens, so shades compare within a row across solutions. Displays inline in JupyterLab."""
    rows = []
    for rm, tvs in values.items():
        tv = tvs[0]
        for scorer in scorers:
            v = tv.values(scorer)
            allv = v[:, 1:][~np.isnan(v[:, 1:])]
            lo, hi = np.percentile(allv, [5, 95]) if len(allv) else (0.0, 1.0)
            rows.append({"label": f"{rm} · {'reward head' if scorer == HEAD else 'Q (' + scorer + ')'}",
                         "values": tv.row(scorer, index)[1:].tolist(), "vmin": float(lo), "vmax": float(hi)})
    tv0 = next(iter(values.values()))[0]
    r = records[index]
    title = (f"{r.prompt} · {'correct' if labels[index] else 'incorrect'}"
             + (f" · first wrong step at token {error_columns[index] - 1}" if error_columns[index] >= 1 else ""))
    err_token = int(error_columns[index]) - 1 if error_columns[index] >= 1 else None
    return plots.token_shading(list(tv0.tokens[index]), rows, title=title, mark=err_token)


# ------------------------------------------------------------------------------------------------ the stage


@dataclass
class RepresentationResult:
    """Everything notebook 02 produced: inputs, prototypes and values, each analysis, and where they are."""

    run_dir: Path
    inputs: RepresentationInputs
    readout: Readout
    analyses: dict[str, Analysis]
    metrics: dict


def run_analyses(p: RepresentationParams, inputs: RepresentationInputs, readout: Readout) -> dict[str, Analysis]:
    """Every analysis of the notebook, in its order, on the values already read."""
    values, labels, errs = readout.values, inputs.labels, inputs.error_columns
    q = p.q_prototype
    scorers = [s.name for s in p.prototypes] + [HEAD]
    out = {
        "partial_auroc": partial_auroc(values, labels, p.fractions, scorers, p.n_bootstrap, p.seed, show=[q, HEAD]),
        "mean_curves": mean_curves(values, labels, q),
        "example_curves": example_curves(values, inputs.records, labels, errs,
                                         choose_examples(labels, errs, p.n_examples, p.seed), q),
        "error_localisation": error_localisation(values, labels, errs, [q, HEAD], p.localisation_window, p.seed),
        "reward_correlations": reward_correlations(values, p.correlation_fractions, [q, HEAD]),
    }
    for method, a in projections(values, readout.prototypes, labels, q, p.projection.methods,
                                 p.projection.n_sequences, p.seed, p.projection.perplexity).items():
        out[a.name] = a
    return out


def save_analyses(run: Run, analyses: dict[str, Analysis]) -> list[Path]:
    """Each analysis's figure as figures/<name>.html and .json, its data as analyses/<name>.json."""
    paths = []
    for name, a in analyses.items():
        run.write_json(f"analyses/{name}.json", a.data)
        if a.figure is not None:
            paths += list(plots.save_figure(a.figure, run.path("figures", name)))
    return paths


def save_token_views(run: Run, views: dict[str, plots.TokenShading]) -> list[Path]:
    """Token shadings as stand-alone HTML files figures/<name>.html."""
    from .io import atomic_write_text

    return [atomic_write_text(run.path("figures", f"{name}.html"), v.page()) for name, v in views.items()]


def summarise(p: RepresentationParams, inputs: RepresentationInputs, readout: Readout,
              analyses: dict[str, Analysis]) -> dict:
    """The headline numbers (metrics.json): partial AUROC at every fraction for every scorer, localisation vs
    chance, correlations, the prototype check and the run's inputs."""
    pa = analyses["partial_auroc"].data
    summary = {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed,
               "q_prototype": p.q_prototype, "inputs": inputs_summary(inputs, p),
               "prototype_check_max_abs_diff": readout.prototype_check,
               "partial_auroc": {rm: {sc: {f"{f:.1f}": at_fraction(pa, rm, sc, f) for f in pa["fractions"]}
                                      for sc in c} for rm, c in pa["curves"].items()},
               "error_localisation": analyses["error_localisation"].data["scores"],
               "reward_correlations": analyses["reward_correlations"].data["correlations"],
               "correlation_fractions": p.correlation_fractions,
               "projections": {k: {rm: {kk: vv for kk, vv in m.items() if kk in ("explained_variance_ratio",
                                                                                  "perplexity")}
                                    for rm, m in a.data.get("maps", {}).items()} or a.data
                               for k, a in analyses.items() if k.startswith("projection_")}}
    return to_jsonable(summary)


def comparison_table(metrics: dict, fractions: tuple[float, ...] = (0.2, 0.5, 1.0)):
    """Baseline and goal-conditioned side by side (pandas DataFrame): partial AUROC at `fractions` by Q-value and
    reward head, localisation vs chance, and the Q/reward Pearson correlation at each correlation fraction;
    mean ± std over seeds, [95% bootstrap interval] for AUROC."""
    import pandas as pd

    q = metrics["q_prototype"]
    cols = {}
    for rm, by in metrics["partial_auroc"].items():
        col = {"AUROC reward head @ 100%, per seed": ", ".join(f"{v:.3f}" for v in by[HEAD]["1.0"]["per_seed"])}
        for sc, label in ((q, f"Q ({q})"), (HEAD, "reward head")):
            for f in fractions:
                e = by[sc][f"{f:.1f}"]
                col[f"AUROC {label} @ {int(f * 100)}%"] = (f"{e['mean']:.3f} ± {e['seed_std']:.3f} "
                                                           f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]")
        for sc, label in ((q, f"Q ({q})"), (HEAD, "reward head")):
            e = metrics["error_localisation"][rm][sc]
            col[f"localisation {label} (chance; control)"] = (
                f"{e['hit_rate']:.3f} ± {e['hit_rate_std']:.3f} ({e['chance']:.3f}; {e['control_hit_rate']:.3f})")
        c = metrics["reward_correlations"][rm][q]["pearson"]
        for k, f in enumerate(metrics["correlation_fractions"]):
            col[f"Pearson r(Q @ {int(f * 100)}%, reward)"] = f"{c['mean'][k]:.3f} ± {c['seed_std'][k]:.3f}"
        cols[rm] = col
    return pd.DataFrame(cols)


def analyse_representations(p: RepresentationParams) -> RepresentationResult:
    """Everything notebook 02 does, headless: start the run, load inputs, build prototypes and read values, run
    and save every analysis and token views, write metrics.json."""
    run = start_run(p)
    seed_everything(p.seed)
    inputs = load_inputs(p, run)
    readout = read_reward_models(p, run, inputs)
    analyses = run_analyses(p, inputs, readout)
    save_analyses(run, analyses)
    idx = choose_examples(inputs.labels, inputs.error_columns, p.n_examples, p.seed)
    views = {f"token_view_{k}": token_view(readout.values, inputs.records, inputs.labels, inputs.error_columns, i,
                                           [p.q_prototype, HEAD]) for k, i in enumerate(idx)}
    save_token_views(run, views)
    metrics = summarise(p, inputs, readout, analyses)
    run.write_json("metrics.json", metrics)
    return RepresentationResult(run.dir, inputs, readout, analyses, metrics)
