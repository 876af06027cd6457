"""Stage of notebook 03_filtering: filtering during majority voting with Q-values (PAPER.md section 4).

N solutions are sampled per question and voted over. A reward model reads every solution token by token; a
solution is pruned at the first token (after the first k) whose score falls below a threshold tau, and the
tokens it would still have produced count as saved. The paper computed that saving after the fact on finished
generations (offline); this module does that exactly, and also prunes ONLINE: samples are stopped while they
are generated, and the tokens actually generated and the wall-clock time are measured.

Every method runs on the same samples:

- ``majority``: plain majority vote over all N samples (no pruning);
- ``q_goal`` / ``q_baseline``: pruning by Q_t = cos(h_t, g) of the goal-conditioned / the baseline reward model,
  each with the `correct` prototype of its own checkpoint;
- ``token_reward_goal`` / ``token_reward_baseline``: pruning by the scalar head applied at every token
  (early rejection with an outcome reward model);
- ``random``: random pruning at the budget of ``q_goal``: each question's pruning decisions (which share of
  samples, how far into them) are dealt to its samples at random;
- ``best_of_n_<rm>``: the answer of the sample with the highest final reward;
- ``weighted_<rm>``: votes weighted by sigmoid(final reward).

Votes: a sample votes for its `answer` (None: no answer could be extracted, no vote). A tie for the most votes is
broken at random by default (``tie_break='random'``: a k-way tie containing the right answer earns expected credit
1/k); ``tie_break='favour_correct'`` counts such a tie as right, as the released code's vote does, and
``tie_break='loss'`` counts every tie as wrong.

Sequences are ``BOS + prompt + response`` plus an EOS only for samples that finished (meta ``finished``; a record
without it counts as finished): a sample cut at `max_new_tokens` never generated an EOS, so it is neither scored
nor counted nor pruned there, exactly as online generation sees it, and its final reward is read at its last token.

Each pruning method's threshold is chosen on validation questions (the most tokens saved at validation accuracy
no more than `max_accuracy_drop` below the unfiltered vote) and reported on test questions, for every reward-model
seed of the notebook-01 run. Order of the stage: seed, data, tokenizer, models, scoring, evaluation, save.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from . import evaluation, plots
from .data import Encoded, GenerationRecord, load_jsonl, pad_batch, save_jsonl
from .generation import CutScorer, RewardModelScorer, first_below, generate_pruned
from .models import load_reward_model, reward_forward
from .params import FilteringParams, RMTrainingParams
from .qvalues import Prototype, q_values, response_token_index
from .rm_runs import policy_dir_of, resolve_rm_run, select_reward_models
from .runs import Run, cached, params_hash, seed_everything, start_run

log = logging.getLogger(__name__)

SETS = ("validation", "test")
PRUNING = {  # method -> (which reward model, which per-token signal)
    "q_goal": ("goal", "q"),
    "q_baseline": ("baseline", "q"),
    "token_reward_goal": ("goal", "token_reward"),
    "token_reward_baseline": ("baseline", "token_reward"),
}
RANDOM_MATCHED_TO = "q_goal"


# ------------------------------------------------------------------------------------------------ the RM run


def device() -> torch.device:
    """Where models run: the first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class RMSetup:
    """The notebook-01 run this stage builds on: its params, the policy, and the two reward models per seed."""

    run_dir: Path
    rm_params: RMTrainingParams
    policy_dir: Path
    rm_seeds: list[int]
    model_dirs: dict[str, list[Path]]
    """'goal' and 'baseline' -> one checkpoint folder per rm seed"""


def load_setup(p: FilteringParams) -> RMSetup:
    """Find (or train) the notebook-01 run and check it holds both reward models of `p`."""
    run_dir = resolve_rm_run(p.rm_run, p.rm_params, p.output_root)
    sel = select_reward_models(run_dir, [p.goal_rm, p.baseline_rm], [])
    goal, baseline = sel.dirs
    return RMSetup(run_dir, sel.params, policy_dir_of(sel.dirs[goal][0]), list(sel.seeds),
                   {"goal": sel.dirs[goal], "baseline": sel.dirs[baseline]})


# ------------------------------------------------------------------------------------------------ samples


@dataclass
class SampleSet:
    """The samples of one set of questions, grouped by question, as the arrays voting needs.

    S samples, Q questions; records are ordered by question. answer: code of the sample's answer among its
    question's distinct answers (-1: no answer); group_correct (Q, A): whether answer code a of question q is
    right; length: response tokens plus the final EOS of a finished sample (what generating the sample costs; an
    unfinished sample has no EOS, see `ends_with_eos`); first_error_token: the response token index holding the
    verifier's first wrong step (meta ``first_error_char``, a character offset, mapped through the tokenizer's
    offsets), -1 when there is none."""

    name: str
    records: list[GenerationRecord]
    prompts: list[str]
    question: np.ndarray
    answer: np.ndarray
    correct: np.ndarray
    length: np.ndarray
    group_correct: np.ndarray
    answers: list[list[str]]
    """per question, the answer string of each code"""
    first_error_token: np.ndarray | None = None

    @property
    def n_questions(self) -> int:
        return len(self.prompts)

    @property
    def uids(self) -> np.ndarray:
        return np.array([int(r.meta.get("uid", i)) for i, r in enumerate(self.records)])


def ends_with_eos(r: GenerationRecord) -> bool:
    """Whether the sample's sequence ends with an EOS: it finished, per meta ``finished`` (False: generation was cut
    at the token limit). A record without ``finished`` counts as finished: a file of generation records holds
    complete solutions unless it says otherwise."""
    fin = r.meta.get("finished", True)
    if not isinstance(fin, bool):
        raise ValueError(f"meta 'finished' must be true or false, got {fin!r} (record {r.meta.get('uid')})")
    return fin


def make_sample_set(name: str, records: list[GenerationRecord], tokenizer, source: str = "") -> SampleSet:
    """Group `records` by prompt (first-appearance order) and code their answers. Lengths are counted with
    `tokenizer` (response tokens, plus the EOS of a finished sample).

    A record whose answer is None casts no vote (no answer could be extracted) and must be incorrect. Raises
    ValueError naming `source` (the file or sampler they came from) when a correct record has no answer or when
    no record has an answer at all: every vote would then score 0."""
    where = f"{source}: " if source else ""
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    recs, question, answer, answers = [], [], [], []
    for qi, (prompt, rs) in enumerate(by_q.items()):
        codes: dict[str, int] = {}
        for r in rs:
            recs.append(r)
            question.append(qi)
            if r.answer is None or r.answer == "":
                if r.is_correct:
                    raise ValueError(f"{where}{name} record uid {r.meta.get('uid', len(recs) - 1)} (prompt {prompt!r}) "
                                     "is correct but has no answer: a vote cannot credit it; give its answer")
                answer.append(-1)
            else:
                answer.append(codes.setdefault(r.answer, len(codes)))
        answers.append(list(codes))
    if recs and all(a < 0 for a in answer):
        raise ValueError(f"{where}none of the {len(recs)} {name} records has an answer: majority voting needs each "
                         "sample's final answer (field 'answer'; null only where none could be extracted)")
    question, answer = np.array(question, dtype=int), np.array(answer, dtype=int)
    correct = np.array([r.is_correct for r in recs], dtype=bool)
    A = max(1, max((len(a) for a in answers), default=1))
    group_correct = np.zeros((len(by_q), A), dtype=bool)
    has = answer >= 0
    np.logical_or.at(group_correct, (question[has], answer[has]), correct[has])
    length = np.array([len(tokenizer(r.response, add_special_tokens=False)["input_ids"]) + int(ends_with_eos(r))
                       for r in recs], dtype=int)
    if len(length) and length.min() < 1:
        i = int(length.argmin())
        raise ValueError(f"{where}{name} record uid {recs[i].meta.get('uid', i)} is unfinished and empty: no token "
                         "to score")
    first_error = np.full(len(recs), -1, dtype=int)
    for i, r in enumerate(recs):
        j = response_token_index(tokenizer, r.response, r.meta.get("first_error_char"))
        if j is not None:
            first_error[i] = j
    return SampleSet(name, recs, list(by_q), question, answer, correct, length, group_correct, answers, first_error)


def toy_questions(p: FilteringParams, exclude: set[str]):
    """`n_validation_questions + n_test_questions` distinct problems of `p.split`, none of whose prompts is in
    `exclude` (the reward models' training and held-out pairs)."""
    from .toyworld import SPLITS, sample_problem

    if p.split not in SPLITS:
        raise ValueError(f"split {p.split!r} is not a toy-world split; known: {sorted(SPLITS)}")
    rng = np.random.default_rng([p.seed, 3, sum(map(ord, p.split))])
    want = p.n_validation_questions + p.n_test_questions
    seen, out = set(exclude), []
    for _ in range(100 * want):
        prob = sample_problem(rng, SPLITS[p.split])
        if prob.prompt not in seen:
            seen.add(prob.prompt)
            out.append(prob)
            if len(out) == want:
                return out
    raise RuntimeError(f"could not draw {want} distinct {p.split!r} questions outside the reward models' pairs")


def sample_toy(p: FilteringParams, setup: RMSetup, cache_root: Path) -> dict[str, list[GenerationRecord]]:
    """N samples per validation and test question from the notebook-01 policy, labelled by the verifier, cached
    by the params that produce them. Each record's meta: set, question_id, sample_index, uid (the sample's id
    for per-sample sampling), first_error_char, finished (reached EOS), n_generated."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .toyworld import MARK_CHARS, verify

    exclude = set()
    for f in ("train_pairs.jsonl", "heldout_pairs.jsonl"):
        path = setup.run_dir / "data" / f
        if path.is_file():
            exclude.update(json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip())
    key = {"artifact": "filtering_samples", "version": 1, "policy_dir": str(setup.policy_dir), "split": p.split,
           "n_validation": p.n_validation_questions, "n_test": p.n_test_questions, "n": p.samples_per_question,
           "temperature": p.temperature, "max_new_tokens": p.max_new_tokens, "seed": p.seed,
           "exclude": params_hash(sorted(exclude))}

    def build(d: Path) -> None:
        problems = toy_questions(p, exclude)
        policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(device())
        tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
        N = p.samples_per_question
        prompts = [q.prompt for q in problems for _ in range(N)]
        uids = list(range(len(prompts)))  # question q, sample j -> q * N + j
        gen = generate_pruned(policy, tokenizer, prompts, uids, chunk_size=p.max_new_tokens,
                              max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=p.seed,
                              batch_size=p.batch_size, suppress_tokens=list(MARK_CHARS), desc="sampling")
        records = []
        for uid, ids, fin in zip(uids, gen.response_ids, gen.finished):
            qid, j = divmod(uid, N)
            prob = problems[qid]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            v = verify(prob, text)
            records.append(GenerationRecord(
                prompt=prob.prompt, response=text, is_correct=v.is_correct,
                answer=None if v.answer is None else str(v.answer),
                meta={"set": "validation" if qid < p.n_validation_questions else "test", "split": p.split,
                      "question_id": qid, "sample_index": j, "uid": uid, "first_error_char": v.first_error_char,
                      "finished": fin, "n_generated": len(ids)}))
        save_jsonl(records, d / "records.jsonl")

    records = load_jsonl(cached(cache_root, "filtering_samples", key, build) / "records.jsonl", GenerationRecord)
    return {s: [r for r in records if r.meta["set"] == s] for s in SETS}


def sample_real(p: FilteringParams, setup: RMSetup, cache_root: Path) -> dict[str, list[GenerationRecord]]:
    """N samples per validation and test question of a real-data notebook-01 run's evaluation set `p.split`: its
    questions (prompts as rendered for the policy) and reference answers come from the run's
    data/eval_<split>.jsonl, the samples from the run's policy at `p.temperature`, and each is labelled by
    extracting its final answer and comparing it with the reference (real_data.extract_answer, answers_match).
    Questions are drawn with `p.seed`; cached by the params that produce them. Meta: set, split, question_id,
    sample_index, uid, reference, finished (reached EOS before `p.max_new_tokens`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .generation import sample_responses
    from .real_data import answers_match, extract_answer

    path = setup.run_dir / "data" / f"eval_{p.split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the notebook-01 run has no evaluation set {p.split!r}; its sets: "
                                f"{sorted(setup.rm_params.data.eval_sets)}")
    references: dict[str, str] = {}
    for r in load_jsonl(path, GenerationRecord):
        if r.meta.get("reference") is None:
            raise ValueError(f"{path}: the records of {p.split!r} carry no reference answer (meta.reference): "
                             "sampling needs a question-answer set (gsm8k, math, svamp, qa, ...)")
        references.setdefault(r.prompt, str(r.meta["reference"]))
    want = p.n_validation_questions + p.n_test_questions
    if len(references) < want:
        raise ValueError(f"{path}: {len(references)} questions; n_validation_questions + n_test_questions = {want}")
    prompts = list(references)
    order = np.random.default_rng([p.seed, 5]).permutation(len(prompts))[:want]
    chosen = [prompts[i] for i in order]
    key = {"artifact": "filtering_samples_real", "version": 2, "policy_dir": str(setup.policy_dir),
           "questions": params_hash(chosen), "n": p.samples_per_question, "temperature": p.temperature,
           "max_new_tokens": p.max_new_tokens, "seed": p.seed}

    def build(d: Path) -> None:
        policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir, dtype="auto").to(device())
        tokenizer = AutoTokenizer.from_pretrained(setup.model_dirs["goal"][0])  # the policy's, pad token set
        N = p.samples_per_question
        outs, fins = sample_responses(policy, tokenizer, chosen, n=N, temperature=p.temperature,
                                      max_new_tokens=p.max_new_tokens, batch_size=p.batch_size, seed=p.seed,
                                      return_finished=True)
        records = []
        for qid, (prompt, texts) in enumerate(zip(chosen, outs)):
            for j, (text, fin) in enumerate(zip(texts, fins[qid])):
                answer = extract_answer(text)
                records.append(GenerationRecord(
                    prompt=prompt, response=text, is_correct=answers_match(answer, references[prompt]),
                    answer=answer, meta={"set": "validation" if qid < p.n_validation_questions else "test",
                                         "split": p.split, "question_id": qid, "sample_index": j,
                                         "uid": qid * N + j, "reference": references[prompt],
                                         "finished": fin}))
        save_jsonl(records, d / "records.jsonl")

    records = load_jsonl(cached(cache_root, "filtering_samples", key, build) / "records.jsonl", GenerationRecord)
    return {s: [r for r in records if r.meta["set"] == s] for s in SETS}


def split_generations(p: FilteringParams, records: list[GenerationRecord]) -> dict[str, list[GenerationRecord]]:
    """Split a file's records by question (seeded shuffle): `n_validation_questions` for validation, then
    `n_test_questions` (0: all the rest) for test. Each record gets a uid (its 0-based index in the file)."""
    prompts = list(dict.fromkeys(r.prompt for r in records))
    if len(prompts) < p.n_validation_questions + 1:
        raise ValueError(f"{p.generations}: {len(prompts)} questions; need more than n_validation_questions="
                         f"{p.n_validation_questions}")
    order = np.random.default_rng([p.seed, 4]).permutation(len(prompts))
    val = {prompts[i] for i in order[:p.n_validation_questions]}
    rest = order[p.n_validation_questions:]
    test = {prompts[i] for i in (rest[:p.n_test_questions] if p.n_test_questions else rest)}
    for i, r in enumerate(records):
        r.meta = {**r.meta, "uid": i}
    return {"validation": [r for r in records if r.prompt in val], "test": [r for r in records if r.prompt in test]}


def build_samples(p: FilteringParams, run: Run, setup: RMSetup) -> dict[str, SampleSet]:
    """The validation and test samples: read from `p.generations`, or sampled from the notebook-01 run's policy
    (the toy world's, or a real-data run's on its evaluation set `p.split`). Copies them into the run folder
    (data/samples_<set>.jsonl). A `generations` file must give every record's `answer` (null: none extracted)."""
    from transformers import AutoTokenizer

    if p.generations:
        path = Path(p.generations).expanduser()
        # every line must say its answer (null where none could be extracted): a missing key is not "no answer"
        raw = split_generations(p, load_jsonl(path, GenerationRecord, require=("answer",)))
        source = str(path)
    elif setup.rm_params.data.kind == "real":
        raw, source = sample_real(p, setup, run.cache_root), f"samples of {setup.run_dir} ({p.split})"
    else:
        raw, source = sample_toy(p, setup, run.cache_root), f"toy samples ({p.split})"
    tokenizer = AutoTokenizer.from_pretrained(setup.model_dirs["goal"][0])
    out = {}
    for s in SETS:
        if not raw[s]:
            raise ValueError(f"no {s} samples")
        save_jsonl(raw[s], run.path("data", f"samples_{s}.jsonl"))
        out[s] = make_sample_set(s, raw[s], tokenizer, source)
    return out


def sample_summary(samples: dict[str, SampleSet]) -> dict:
    """Questions, samples, share of correct samples, share of samples cut at the token limit (no EOS) and mean
    response length (tokens, with the EOS of finished samples) per set."""
    return {s: {"questions": ss.n_questions, "samples": len(ss.records), "share_correct": float(ss.correct.mean()),
                "share_unfinished": float(np.mean([not ends_with_eos(r) for r in ss.records])),
                "mean_length": float(ss.length.mean())} for s, ss in samples.items()}


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class SampleScores:
    """One reward model's reading of a SampleSet. q, token_reward: (S, Lmax) per response token (the EOS included
    for finished samples), NaN past each sample's length; reward: (S,) the final reward at the last token (the
    EOS of a finished sample)."""

    q: np.ndarray
    token_reward: np.ndarray
    reward: np.ndarray

    def signal(self, name: str) -> np.ndarray:
        return self.q if name == "q" else self.token_reward


@torch.no_grad()
def score_sample_set(model, tokenizer, prototype: torch.Tensor, ss: SampleSet, batch_size: int = 256,
                     desc: str = "scoring") -> SampleScores:
    """Per-token Q-values and head outputs and the final reward of every sample, in one forward pass per batch,
    in the kit's format (BOS + prompt + response + EOS), without the EOS for a sample that did not finish
    (`ends_with_eos`): what online generation reads too."""
    model.eval()
    dev = next(model.parameters()).device
    S, L = len(ss.records), int(ss.length.max())
    q = np.full((S, L), np.nan, dtype=np.float32)
    tr = np.full((S, L), np.nan, dtype=np.float32)
    reward = np.zeros(S, dtype=np.float32)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for s in tqdm(range(0, S, batch_size), desc=desc, leave=False):
        recs = ss.records[s:s + batch_size]
        seqs = []
        for r in recs:  # data.encode's format; an empty response is just its EOS; no EOS an unfinished sample lacks
            pr = tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            rs = tokenizer(r.response, add_special_tokens=False)["input_ids"]
            eos = [tokenizer.eos_token_id] if ends_with_eos(r) else []
            seqs.append(Encoded(bos + pr + rs + eos, len(bos) + len(pr)))
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        qv = q_values(out.hidden, prototype).cpu().numpy()
        tv = out.token_rewards.float().cpu().numpy()
        reward[s:s + len(recs)] = out.rewards.float().cpu().numpy()
        for j, e in enumerate(seqs):
            n = e.response_len
            assert n == ss.length[s + j], "make_sample_set and scoring disagree on a sample's length"
            q[s + j, :n] = qv[j, e.response_start:e.response_start + n]
            tr[s + j, :n] = tv[j, e.response_start:e.response_start + n]
    return SampleScores(q, tr, reward)


def score_all(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet]
              ) -> dict[tuple[str, int], dict[str, SampleScores]]:
    """Scores of every sample by both reward models, for every rm seed: {(which, seed index): {set: scores}}."""
    out = {}
    for which in ("goal", "baseline"):
        for k, d in enumerate(setup.model_dirs[which]):
            model, tokenizer = load_reward_model(d)
            model.to(device())
            proto = Prototype.load(d, "correct").vector
            out[(which, k)] = {s: score_sample_set(model, tokenizer, proto, ss, p.batch_size,
                                                   desc=f"scoring {s} with {d.name}") for s, ss in samples.items()}
    return out


# ------------------------------------------------------------------------------------------------ voting


def vote_credit(ss: SampleSet, kept: np.ndarray, tie_break: str = "random", weights: np.ndarray | None = None
                ) -> np.ndarray:
    """Per-question credit (Q,) of the (weighted) majority vote over the kept samples that have an answer.

    The answer(s) with the most votes win. One winner: credit 1 if it is right. A tie of k answers: `random` (the
    default) breaks it at random, so the credit is the expected one, (right winners)/k, i.e. 1/k when one of the k
    is right; `loss` gives 0; `favour_correct` gives 1 if any winner is right (the released code's tie-favouring
    vote, which overstates accuracy). No kept answer: 0."""
    if tie_break not in ("random", "loss", "favour_correct"):
        raise ValueError(f"unknown tie_break {tie_break!r}")
    Q, A = ss.group_correct.shape
    use = kept & (ss.answer >= 0)
    w = np.ones(len(ss.answer)) if weights is None else np.asarray(weights, dtype=float)
    counts = np.zeros((Q, A))
    np.add.at(counts, (ss.question[use], ss.answer[use]), w[use])
    voted = np.zeros((Q, A), dtype=bool)
    voted[ss.question[use], ss.answer[use]] = True
    top = np.where(voted, counts, -np.inf).max(1)
    answered = voted.any(1)
    winners = voted & (counts == top[:, None]) & answered[:, None]
    n_win = winners.sum(1)
    right = (winners & ss.group_correct).sum(1)
    if tie_break == "random":
        return np.where(n_win > 0, right / np.maximum(n_win, 1), 0.0)
    if tie_break == "loss":
        return ((n_win == 1) & (right == 1)).astype(float)
    return (right > 0).astype(float)


def vote_winner(ss: SampleSet, kept: np.ndarray) -> list[str | None]:
    """The answer string with the most kept votes per question (first in order on a tie; None without votes)."""
    out = []
    for qi in range(ss.n_questions):
        m = (ss.question == qi) & kept & (ss.answer >= 0)
        if not m.any():
            out.append(None)
            continue
        codes, counts = np.unique(ss.answer[m], return_counts=True)
        out.append(ss.answers[qi][int(codes[counts.argmax()])])
    return out


# ------------------------------------------------------------------------------------------------ offline pruning


def prune_positions(scores: np.ndarray, threshold: float, skip: int) -> np.ndarray:
    """(S, L) per-token scores (NaN past each sample's end) -> (S,) response index where each sample is pruned,
    or -1. The rule is `generation.first_below`, the one online generation applies."""
    s = torch.from_numpy(np.nan_to_num(scores, nan=np.inf))
    valid = torch.from_numpy(~np.isnan(scores))
    return first_below(s, valid, float(threshold), skip).numpy()


def evaluate_pruning(ss: SampleSet, prune_at: np.ndarray, tie_break: str, all_pruned: str) -> dict:
    """Vote accuracy and cost of one pruning decision per sample ((S,) prune index or -1).

    A pruned sample generated tokens 0..t (t+1 tokens: the token whose score fell must exist to be scored) and
    saves the rest; a kept sample generated all of them. Questions whose samples were all pruned abstain
    (credit 0), or with `all_pruned='unfiltered'` fall back to the vote over all their samples, whose tokens then
    all count as generated. Returns accuracy, credit (Q,), shares of samples pruned and tokens saved, token
    counts, and how many questions had every sample pruned."""
    kept = prune_at < 0
    generated = np.where(kept, ss.length, np.minimum(prune_at + 1, ss.length))
    credit = vote_credit(ss, kept, tie_break)
    n_kept = np.bincount(ss.question, weights=kept.astype(float), minlength=ss.n_questions)
    all_gone = n_kept == 0
    if all_pruned == "unfiltered" and all_gone.any():
        full = vote_credit(ss, np.ones_like(kept), tie_break)
        credit = np.where(all_gone, full, credit)
        generated = np.where(all_gone[ss.question], ss.length, generated)
    elif all_pruned not in ("abstain", "unfiltered"):
        raise ValueError(f"unknown all_pruned {all_pruned!r}")
    total = int(ss.length.sum())
    return {"accuracy": float(credit.mean()), "credit": credit, "share_pruned": float((~kept).mean()),
            "tokens_generated": int(generated.sum()), "tokens_total": total,
            "share_tokens_saved": float(1 - generated.sum() / total), "questions_all_pruned": int(all_gone.sum())}


def pruning_statistics(ss: SampleSet, prune_at: np.ndarray) -> dict:
    """The paper's statistics of one pruning decision: proportion of correct samples among the kept ones vs all
    of them, with Welch's t-test (scipy) as the paper compares them, and kept vs pruned (disjoint groups, the
    cleaner test)."""
    kept = prune_at < 0
    c = ss.correct.astype(float)

    def welch(a, b):
        if len(a) < 2 or len(b) < 2:
            return {"t": float("nan"), "p": float("nan")}
        r = stats.ttest_ind(a, b, equal_var=False)
        return {"t": float(r.statistic), "p": float(r.pvalue)}

    return {"correct_kept": float(c[kept].mean()) if kept.any() else float("nan"),
            "correct_all": float(c.mean()),
            "correct_pruned": float(c[~kept].mean()) if (~kept).any() else float("nan"),
            "ttest_kept_vs_all": welch(c[kept], c), "ttest_kept_vs_pruned": welch(c[kept], c[~kept])}


def paired_vote_test(credit: np.ndarray, credit_unfiltered: np.ndarray) -> dict:
    """Paired t-test over questions (scipy ttest_rel) of filtered vs unfiltered vote credit: is the accuracy
    change real? NaN when the two never differ."""
    if np.allclose(credit, credit_unfiltered):
        return {"t": float("nan"), "p": float("nan")}
    r = stats.ttest_rel(credit, credit_unfiltered)
    return {"t": float(r.statistic), "p": float(r.pvalue)}


def min_after(scores: np.ndarray, skip: int) -> np.ndarray:
    """(S, L) scores -> (S,) each sample's lowest score over response tokens >= skip (+inf when there are none):
    the statistic the pruning rule thresholds (a sample is pruned iff it is below tau)."""
    s = np.where(np.arange(scores.shape[1])[None, :] >= skip, scores, np.nan)
    return np.nanmin(np.where(np.isnan(s), np.inf, s), axis=1)


def threshold_grid(scores: np.ndarray, skip: int, quantiles: list[float]) -> np.ndarray:
    """Thresholds that prune a share `quantiles` of these samples: the rule prunes a sample when its lowest score
    over response tokens >= `skip` is below tau, so for the n sorted minima m, quantile q gives the midpoint
    between m[j-1] and m[j] with j = round(q n) (j samples pruned); 0 and 1 fall just outside the range.
    Midpoints keep every threshold away from a sample's own score, so float noise cannot flip a decision."""
    mins = np.sort(min_after(scores, skip))
    mins = mins[np.isfinite(mins)].astype(float)
    n = len(mins)
    if n == 0:
        return np.zeros(len(quantiles))
    pad = 0.05 * (mins[-1] - mins[0]) + 1e-6
    ext = np.concatenate([[mins[0] - 2 * pad], mins, [mins[-1] + 2 * pad]])
    j = np.clip(np.round(np.asarray(quantiles) * n).astype(int), 0, n)
    return (ext[j] + ext[j + 1]) / 2


def random_matched(ss: SampleSet, reference: np.ndarray, skip: int, rng: np.random.Generator) -> np.ndarray:
    """Random pruning at the budget of `reference` ((S,) prune index or -1): within each question, the
    reference's decisions are dealt to its samples in random order, each cut at the same fraction of the
    receiving sample's length (never before token `skip`). Same share pruned per question, about the same tokens."""
    perm = np.argsort(ss.question + rng.random(len(ss.question)), kind="stable")  # shuffles within questions
    assert np.all(np.diff(ss.question) >= 0), "samples must be ordered by question"
    src = perm  # sample i receives the decision of sample perm[i] of the same question
    ref = reference[src]
    frac = (ref + 1) / ss.length[src]
    gen = np.clip(np.round(frac * ss.length).astype(int), skip + 1, ss.length)
    out = np.where(ref >= 0, gen - 1, -1)
    out[(ref >= 0) & (ss.length <= skip)] = -1  # too short to be pruned by the rule
    return out


def best_of_n_credit(ss: SampleSet, reward: np.ndarray) -> np.ndarray:
    """Per-question credit of answering with the sample of the highest final reward."""
    credit = np.zeros(ss.n_questions)
    for qi in range(ss.n_questions):
        idx = np.flatnonzero(ss.question == qi)
        credit[qi] = float(ss.correct[idx[np.argmax(reward[idx])]])
    return credit


def weighted_credit(ss: SampleSet, reward: np.ndarray, tie_break: str) -> np.ndarray:
    """Per-question credit of the vote weighted by sigmoid(final reward) (the BT probability of beating a
    reward-0 response)."""
    return vote_credit(ss, np.ones(len(reward), dtype=bool), tie_break, 1 / (1 + np.exp(-reward.astype(float))))


def within_question_auroc(ss: SampleSet, x: np.ndarray) -> float:
    """Share of (correct, incorrect) sample pairs of the same question in which the correct one has the higher
    `x` (ties count half): AUROC restricted to comparisons a vote can use. NaN without such pairs."""
    wins = total = 0.0
    for qi in range(ss.n_questions):
        m = ss.question == qi
        a, b = x[m & ss.correct], x[m & ~ss.correct]
        if len(a) and len(b):
            d = a[:, None] - b[None, :]
            wins += (d > 0).sum() + 0.5 * (d == 0).sum()
            total += d.size
    return float(wins / total) if total else float("nan")


def signal_auroc(ss: SampleSet, sc: SampleScores, signal: str, skip: int) -> dict:
    """How well a per-token signal tells correct from incorrect test samples: AUROC (pooled over questions, and
    within questions) of the statistic the rule thresholds, its minimum after `skip` tokens, and of its value at
    the last token (the EOS of a finished sample). Where the minimum sits, as a fraction of the response, says what
    the rule reacts to."""
    x = sc.signal(signal)
    mins = min_after(x, skip)
    last = x[np.arange(len(ss.length)), ss.length - 1]
    where = np.argmin(np.where(np.arange(x.shape[1])[None, :] >= skip, np.nan_to_num(x, nan=np.inf), np.inf), 1)
    ok = np.isfinite(mins)
    return {"min_auroc": evaluation.auroc(mins[ok].tolist(), ss.correct[ok].tolist()),
            "min_auroc_within_question": within_question_auroc(ss, mins),
            "last_auroc": evaluation.auroc(last.tolist(), ss.correct.tolist()),
            "last_auroc_within_question": within_question_auroc(ss, last),
            "argmin_position": float(np.mean((where / ss.length)[ok]))}


def choose_threshold(sweep: list[dict], unfiltered_accuracy: float, max_drop: float) -> int:
    """Index of the eligible threshold (validation accuracy >= unfiltered - max_drop) that saves the most tokens;
    among equal savings the more accurate. Index 0 (quantile 0 prunes nothing) when none is eligible."""
    best, key = 0, None
    for i, r in enumerate(sweep):
        if r["accuracy"] >= unfiltered_accuracy - max_drop - 1e-12:
            k = (r["share_tokens_saved"], r["accuracy"])
            if key is None or k > key:
                best, key = i, k
    return best


@dataclass
class OfflineResult:
    """rows: one per (method, rm seed) on the test set at the validation-chosen threshold (pruning methods), or
    the method's single operating point; paper_rows: Q-value methods at the paper's threshold; frontier: every
    (method, rm seed, set, grid point); chosen: (method, seed index) -> chosen threshold and test prune indices."""

    rows: list[dict]
    paper_rows: list[dict]
    frontier: list[dict]
    signals: list[dict] = field(default_factory=list)
    """per pruning method and rm seed: `signal_auroc` on the test samples"""
    chosen: dict = field(default_factory=dict)
    credits: dict = field(default_factory=dict)
    """(method, seed index) -> per-question test credit, and ('majority', -1) -> unfiltered credit"""


def evaluate_offline(p: FilteringParams, samples: dict[str, SampleSet],
                     scores: dict[tuple[str, int], dict[str, SampleScores]], rm_seeds: list[int]) -> OfflineResult:
    """Every method on the same samples, for every rm seed: threshold sweep on both sets, choice on validation,
    statistics on test."""
    test = samples["test"]
    tb, ap, k = p.tie_break, p.all_pruned, p.skip_tokens
    all_kept = {s: np.full(len(ss.records), -1) for s, ss in samples.items()}
    unf = {s: evaluate_pruning(ss, all_kept[s], tb, ap) for s, ss in samples.items()}
    res = OfflineResult([], [], [])
    res.credits[("majority", -1)] = unf["test"]["credit"]
    for si, seed in enumerate(rm_seeds):
        base = {"rm_seed": seed, "accuracy_unfiltered": unf["test"]["accuracy"]}
        res.rows.append({"method": "majority", **base, "threshold": None, "accuracy": unf["test"]["accuracy"],
                         "share_pruned": 0.0, "share_tokens_saved": 0.0,
                         "tokens_generated": unf["test"]["tokens_total"], "tokens_total": unf["test"]["tokens_total"]})
        for which in ("goal", "baseline"):
            r = scores[(which, si)]["test"].reward
            for name, credit in ((f"best_of_n_{which}", best_of_n_credit(test, r)),
                                 (f"weighted_{which}", weighted_credit(test, r, tb))):
                res.credits[(name, si)] = credit
                res.rows.append({"method": name, **base, "threshold": None, "accuracy": float(credit.mean()),
                                 "share_pruned": 0.0, "share_tokens_saved": 0.0,
                                 "tokens_generated": unf["test"]["tokens_total"],
                                 "tokens_total": unf["test"]["tokens_total"],
                                 "paired_vote_ttest": paired_vote_test(credit, unf["test"]["credit"])})
        for method, (which, signal) in PRUNING.items():
            res.signals.append({"method": method, "rm_seed": seed,
                                **signal_auroc(test, scores[(which, si)]["test"], signal, k)})
            sc = {s: scores[(which, si)][s].signal(signal) for s in SETS}
            taus = threshold_grid(sc["validation"], k, p.threshold_quantiles)
            sweeps = {}
            for s, ss in samples.items():
                sweeps[s] = []
                for qu, tau in zip(p.threshold_quantiles, taus):
                    ev = evaluate_pruning(ss, prune_positions(sc[s], tau, k), tb, ap)
                    sweeps[s].append(ev)
                    res.frontier.append({"method": method, "rm_seed": seed, "set": s, "quantile": float(qu),
                                         "threshold": float(tau), **_public(ev)})
            i = choose_threshold(sweeps["validation"], unf["validation"]["accuracy"], p.max_accuracy_drop)
            tau = float(taus[i])
            prune = prune_positions(sc["test"], tau, k)
            ev = evaluate_pruning(test, prune, tb, ap)
            res.chosen[(method, si)] = {"threshold": tau, "quantile": float(p.threshold_quantiles[i]),
                                        "prune_at": prune,
                                        "validation_accuracy": sweeps["validation"][i]["accuracy"],
                                        "validation_share_tokens_saved": sweeps["validation"][i]["share_tokens_saved"]}
            res.credits[(method, si)] = ev["credit"]
            res.rows.append({"method": method, **base, "threshold": tau, "quantile": float(p.threshold_quantiles[i]),
                             "validation_accuracy": sweeps["validation"][i]["accuracy"],
                             "validation_accuracy_unfiltered": unf["validation"]["accuracy"], **_public(ev),
                             **pruning_statistics(test, prune),
                             "paired_vote_ttest": paired_vote_test(ev["credit"], unf["test"]["credit"])})
            if signal == "q":
                pp = prune_positions(sc["test"], p.paper_threshold, k)
                pe = evaluate_pruning(test, pp, tb, ap)
                res.paper_rows.append({"method": method, "rm_seed": seed, "threshold": p.paper_threshold,
                                       "accuracy_unfiltered": unf["test"]["accuracy"], **_public(pe),
                                       **pruning_statistics(test, pp),
                                       "paired_vote_ttest": paired_vote_test(pe["credit"], unf["test"]["credit"])})
        # random pruning at the budget of the reference method: its chosen point, and along its whole frontier
        ref = RANDOM_MATCHED_TO
        rng = np.random.default_rng([p.seed, 5, si])
        draws = [random_matched(test, res.chosen[(ref, si)]["prune_at"], k, rng) for _ in range(p.random_repeats)]
        evs = [evaluate_pruning(test, d, tb, ap) for d in draws]
        credit = np.mean([e["credit"] for e in evs], axis=0)
        res.credits[("random", si)] = credit
        res.chosen[("random", si)] = {"threshold": None, "prune_at": draws[0], "matched_to": ref}
        res.rows.append({"method": "random", **base, "threshold": None, "matched_to": ref,
                         "accuracy": float(credit.mean()),
                         "accuracy_std_over_draws": float(np.std([e["accuracy"] for e in evs])),
                         "share_pruned": float(np.mean([e["share_pruned"] for e in evs])),
                         "share_tokens_saved": float(np.mean([e["share_tokens_saved"] for e in evs])),
                         "tokens_generated": float(np.mean([e["tokens_generated"] for e in evs])),
                         "tokens_total": evs[0]["tokens_total"],
                         **pruning_statistics(test, draws[0]),
                         "paired_vote_ttest": paired_vote_test(credit, unf["test"]["credit"])})
        ref_sc = scores[(PRUNING[ref][0], si)]["test"].signal(PRUNING[ref][1])
        ref_taus = [f["threshold"] for f in res.frontier
                    if f["method"] == ref and f["rm_seed"] == seed and f["set"] == "validation"]
        for qu, tau in zip(p.threshold_quantiles, ref_taus):
            rp = prune_positions(ref_sc, tau, k)
            evs = [evaluate_pruning(test, random_matched(test, rp, k, rng), tb, ap) for _ in range(p.random_repeats)]
            res.frontier.append({"method": "random", "rm_seed": seed, "set": "test", "quantile": float(qu),
                                 "threshold": None, "matched_to": ref,
                                 **{m: float(np.mean([e[m] for e in evs])) for m in
                                    ("accuracy", "share_pruned", "share_tokens_saved", "tokens_generated")},
                                 "tokens_total": evs[0]["tokens_total"]})
    return res


def _public(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k != "credit"}


# ------------------------------------------------------------------------------------------------ online pruning


def _fastest(xs: list[float]) -> float:
    # on a shared machine other work only ever adds time, so the fastest repeat is the best estimate of what a
    # method costs by itself (a median of three still moves by 5x when a neighbour runs); all repeats are kept
    return float(np.min(xs))


def evaluate_online(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet], offline: OfflineResult
                    ) -> list[dict]:
    """Online pruning on the test questions, for every pruning method at its chosen threshold and every rm seed.

    Each run generates the test samples (same uids, so the same samples as offline) and stops those whose score
    falls below the threshold. Reported: policy tokens actually generated, tokens the scorer read, wall-clock
    (the fastest of `online.repeats` runs, interleaved), vote accuracy of the online run, and whether its decisions
    and kept responses equal the offline ones. References: ``generate_all`` (one plain `generate` call per batch,
    what sampling usually is) and ``none`` (the same chunked loop without a scorer); best-of-N and weighted voting
    cost ``none`` plus scoring every finished sample with their reward model. Returns one row per run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .toyworld import MARK_CHARS

    test = samples["test"]
    o = p.online
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(device())
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    prompts = [r.prompt for r in test.records]
    uids = [int(u) for u in test.uids]
    row_of = {u: i for i, u in enumerate(uids)}
    common = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=p.seed, batch_size=o.batch_size,
                  suppress_tokens=list(MARK_CHARS), skip_tokens=p.skip_tokens)
    expected = [tokenizer(r.response, add_special_tokens=False)["input_ids"]
                + ([tokenizer.eos_token_id] if ends_with_eos(r) else []) for r in test.records]

    rms = {}
    for which in ("goal", "baseline"):
        rms[which] = []
        for d in setup.model_dirs[which]:
            model, _ = load_reward_model(d)
            model.to(policy.device)
            rms[which].append((model, Prototype.load(d, "correct").vector))

    # every run of every seed, interleaved over the repeats so that a slow spell of the machine hits them all
    jobs: dict[tuple[str, int], tuple] = {("generate_all", -1): (None, float("-inf"), p.max_new_tokens),
                                          ("none", -1): (None, float("-inf"), o.chunk_size)}
    for si in range(len(setup.rm_seeds)):
        for method, (which, signal) in PRUNING.items():
            model, proto = rms[which][si]
            jobs[(method, si)] = (lambda m=model, g=proto, s=signal: RewardModelScorer(m, s, g),
                                  offline.chosen[(method, si)]["threshold"], o.chunk_size)
        cuts = {uids[i]: int(t) for i, t in enumerate(offline.chosen[("random", si)]["prune_at"]) if t >= 0}
        jobs[("random", si)] = (lambda c=cuts: CutScorer(c), 0.0, o.chunk_size)
    seconds: dict[tuple, list[float]] = {j: [] for j in jobs}
    score_seconds: dict[tuple, list[float]] = {(w, si): [] for w in ("goal", "baseline")
                                               for si in range(len(setup.rm_seeds))}
    first: dict = {}
    for rep in range(o.repeats):
        for job, (make, tau, chunk) in jobs.items():
            gen = generate_pruned(policy, tokenizer, prompts, uids, scorer=make() if make else None, threshold=tau,
                                  chunk_size=chunk, desc=f"online {job[0]}", **common)
            extra_s, extra_tok = 0.0, 0
            if p.all_pruned == "unfiltered" and make is not None:
                # the fallback needs every sample of an all-pruned question: generate them again, in full
                gone = _all_pruned_questions(test, gen, row_of)
                if gone:
                    idx = [i for i, q in enumerate(test.question) if q in gone]
                    again = generate_pruned(policy, tokenizer, [prompts[i] for i in idx], [uids[i] for i in idx],
                                            chunk_size=chunk, desc="online fallback", **common)
                    extra_s, extra_tok = again.seconds, again.policy_tokens
            seconds[job].append(gen.seconds + extra_s)
            if rep == 0:
                first[job] = (gen, extra_tok)
        # best-of-N and weighted voting score every finished sample once with their reward model
        for (which, si) in score_seconds:
            model, proto = rms[which][si]
            t0 = time.perf_counter()
            score_sample_set(model, tokenizer, proto, test, p.batch_size, desc=f"scoring test ({which})")
            score_seconds[(which, si)].append(time.perf_counter() - t0)
    ref_tokens = first[("none", -1)][0].policy_tokens
    ref_s, hf_s = _fastest(seconds[("none", -1)]), _fastest(seconds[("generate_all", -1)])
    rows = []
    for (method, si), (gen, extra_tok) in first.items():
        prune_at = np.full(len(uids), -1)
        for u, t in zip(gen.uids, gen.pruned_at):
            prune_at[row_of[u]] = t
        same = [gen.response_ids[j] == expected[row_of[u]] for j, u in enumerate(gen.uids) if gen.pruned_at[j] < 0]
        ev = evaluate_pruning(test, prune_at, p.tie_break, p.all_pruned)
        off = offline.chosen.get((method, si))
        agree = float(np.mean(prune_at == off["prune_at"])) if off is not None else float(np.mean(prune_at < 0))
        tokens = gen.policy_tokens + extra_tok
        sec = _fastest(seconds[(method, si)])
        rows.append({"method": method, "rm_seed": setup.rm_seeds[si] if si >= 0 else None,
                     "threshold": None if off is None else off["threshold"],
                     "chunk_size": jobs[(method, si)][2], "policy_tokens": tokens, "scorer_tokens": gen.scorer_tokens,
                     "share_tokens_saved": 1 - tokens / ref_tokens, "seconds": sec,
                     "seconds_all": seconds[(method, si)], "share_seconds_saved": 1 - sec / ref_s,
                     "share_seconds_saved_vs_generate_all": 1 - sec / hf_s,
                     "accuracy": ev["accuracy"], "share_pruned": ev["share_pruned"],
                     "decisions_match_offline": agree,
                     "kept_responses_match_offline": float(np.mean(same)) if same else float("nan")})
    # best-of-N and weighted voting write every sample, then score each finished one once
    for si, seed in enumerate(setup.rm_seeds):
        for which in ("goal", "baseline"):
            sec = ref_s + _fastest(score_seconds[(which, si)])
            for name in (f"best_of_n_{which}", f"weighted_{which}"):
                rows.append({"method": name, "rm_seed": seed, "threshold": None, "chunk_size": o.chunk_size,
                             "policy_tokens": ref_tokens, "scorer_tokens": int(test.length.sum()),
                             "share_tokens_saved": 0.0, "seconds": sec, "share_seconds_saved": 1 - sec / ref_s,
                             "share_seconds_saved_vs_generate_all": 1 - sec / hf_s,
                             "accuracy": float(offline.credits[(name, si)].mean())})
    return rows


def _all_pruned_questions(ss: SampleSet, gen, row_of: dict) -> set[int]:
    kept = np.zeros(ss.n_questions)
    for u, t in zip(gen.uids, gen.pruned_at):
        if t < 0:
            kept[ss.question[row_of[u]]] += 1
    return {int(q) for q in np.flatnonzero(kept == 0)}


# ------------------------------------------------------------------------------------------------ results


METHOD_ORDER = ["majority", "q_goal", "q_baseline", "token_reward_goal", "token_reward_baseline", "random",
                "best_of_n_goal", "best_of_n_baseline", "weighted_goal", "weighted_baseline"]


def summarise(rows: list[dict], online: list[dict]) -> list[dict]:
    """Mean and sample std over rm seeds, per method, of the test numbers at the chosen thresholds."""
    out = []
    for m in [x for x in METHOD_ORDER if any(r["method"] == x for r in rows)]:
        rs = [r for r in rows if r["method"] == m]
        on = [r for r in online if r["method"] == m]
        e = {"method": m, "n_seeds": len(rs)}
        for key in ("accuracy", "accuracy_unfiltered", "share_pruned", "share_tokens_saved"):
            mean, std, _ = evaluation.mean_std([r[key] for r in rs])
            e[key] = {"mean": mean, "std": std}
        for key in ("share_tokens_saved", "share_seconds_saved", "share_seconds_saved_vs_generate_all",
                    "accuracy", "seconds"):
            if on:
                mean, std, _ = evaluation.mean_std([r[key] for r in on])
                e[f"online_{key}"] = {"mean": mean, "std": std}
        out.append(e)
    return out


@dataclass
class FilteringResult:
    """What notebook 03 produced (see OfflineResult for rows/frontier); online: one row per online run;
    summary: mean/std over rm seeds per method."""

    run_dir: Path
    setup: RMSetup
    samples: dict[str, SampleSet]
    offline: OfflineResult
    online: list[dict]
    summary: list[dict]
    figures: dict = field(default_factory=dict)


def finish(p: FilteringParams, run: Run, setup: RMSetup, samples: dict[str, SampleSet],
           scores: dict, offline: OfflineResult, online: list[dict]) -> FilteringResult:
    """Write metrics.json, the per-question table (per_question.csv) and the figures; return the result."""
    summary = summarise(offline.rows, online)
    result = FilteringResult(run.dir, setup, samples, offline, online, summary)
    run.write_json("metrics.json", {
        "notebook": p.notebook, "params_name": p.params_name, "seed": p.seed, "rm_run": str(setup.run_dir),
        "rm_seeds": setup.rm_seeds, "goal_rm": p.goal_rm, "baseline_rm": p.baseline_rm,
        "samples_per_question": p.samples_per_question, "skip_tokens": p.skip_tokens, "tie_break": p.tie_break,
        "all_pruned": p.all_pruned, "samples": sample_summary(samples), "rows": offline.rows,
        "paper_threshold": offline.paper_rows, "signals": offline.signals, "online": online, "summary": summary,
        "frontier": offline.frontier})
    per_question_table(samples["test"], offline, p, setup.rm_seeds).to_csv(run.path("per_question.csv"))
    result.figures = save_figures(run, result, scores, p)
    return result


def trace_figure(p: FilteringParams, samples: dict[str, SampleSet], scores: dict, offline: OfflineResult):
    """Q-value traces of test samples (goal-conditioned RM, first rm seed) with its chosen threshold."""
    test = samples["test"]
    return plots.qvalue_traces(scores[("goal", 0)]["test"].q, test.correct, test.first_error_token,
                               offline.chosen[("q_goal", 0)]["threshold"], p.skip_tokens, p.paper_threshold,
                               seed=p.seed)


def save_figures(run: Run, result: FilteringResult, scores: dict, p: FilteringParams) -> dict:
    """The frontier, Q-value traces and the online cost, as plotly HTML + JSON in run/figures/."""
    figs = {"frontier": plots.filtering_frontier(result.offline.frontier, result.offline.rows),
            "qvalue_traces": trace_figure(p, result.samples, scores, result.offline)}
    if result.online:
        figs["online_cost"] = plots.online_cost(result.online)
    for name, fig in figs.items():
        plots.save_figure(fig, run.path("figures", name))
    return figs


def results_table(rows: list[dict], online: list[dict] | None = None):
    """Mean ± std over rm seeds per method on the test questions at the validation-chosen thresholds
    (pandas DataFrame); `rows` from OfflineResult, `online` from `evaluate_online`."""
    import pandas as pd

    def f(e, key, pct=False):
        v = e.get(key)
        if v is None:
            return ""
        return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}" if pct else f"{v['mean']:.3f} ± {v['std']:.3f}"

    out = []
    for e in summarise(rows, online or []):
        r = {"method": e["method"], "seeds": e["n_seeds"], "vote accuracy": f(e, "accuracy"),
             "unfiltered": f(e, "accuracy_unfiltered"), "% pruned": f(e, "share_pruned", True),
             "% tokens saved (offline)": f(e, "share_tokens_saved", True)}
        if online:
            r.update({"% tokens saved (online)": f(e, "online_share_tokens_saved", True),
                      "% wall-clock saved (online)": f(e, "online_share_seconds_saved", True),
                      "online accuracy": f(e, "online_accuracy")})
        out.append(r)
    return pd.DataFrame(out).set_index("method")


def statistics_table(rows: list[dict]):
    """The paper's statistics per (method, rm seed): share pruned, share of tokens saved, proportion correct
    among kept vs all samples with Welch's t-test, and the paired test of the vote accuracy (DataFrame)."""
    import pandas as pd

    out = []
    for r in rows:
        if "correct_kept" not in r:
            continue
        out.append({"method": r["method"], "rm_seed": r["rm_seed"], "threshold": r.get("threshold"),
                    "vote acc": r["accuracy"], "unfiltered": r["accuracy_unfiltered"],
                    "% pruned": 100 * r["share_pruned"], "% tokens saved": 100 * r["share_tokens_saved"],
                    "correct | kept": r["correct_kept"], "correct | all": r["correct_all"],
                    "p (kept vs all)": r["ttest_kept_vs_all"]["p"],
                    "p (kept vs pruned)": r["ttest_kept_vs_pruned"]["p"],
                    "p (vote, paired)": r["paired_vote_ttest"]["p"]})
    return pd.DataFrame(out).set_index(["method", "rm_seed"])


def signal_table(signals: list[dict]):
    """AUROC for correctness of what each pruning method thresholds (its minimum after k tokens) and of its last
    value, pooled and within questions, per rm seed (DataFrame)."""
    import pandas as pd

    df = pd.DataFrame(signals).set_index(["method", "rm_seed"])
    return df.rename(columns={"min_auroc": "AUROC min", "min_auroc_within_question": "AUROC min (within q)",
                              "last_auroc": "AUROC last", "last_auroc_within_question": "AUROC last (within q)",
                              "argmin_position": "min at (fraction)"})


def online_table(online: list[dict]):
    """Online runs per method, mean over rm seeds: tokens generated, seconds, savings, accuracy (DataFrame)."""
    import pandas as pd

    df = pd.DataFrame(online)
    cols = ["policy_tokens", "scorer_tokens", "seconds", "share_tokens_saved", "share_seconds_saved",
            "share_seconds_saved_vs_generate_all", "accuracy", "decisions_match_offline",
            "kept_responses_match_offline"]
    cols = [c for c in cols if c in df]
    order = ["generate_all", "none"] + [m for m in METHOD_ORDER if m != "majority"]
    g = df.groupby("method")[cols].mean()
    return g.loc[[m for m in order if m in g.index]]


def per_question_table(ss: SampleSet, offline: OfflineResult, p: FilteringParams, rm_seeds: list[int],
                       method: str = "q_goal", seed_index: int = 0):
    """One row per test question for `method` at its chosen threshold (first rm seed): samples, correct ones,
    kept ones, the unfiltered and the filtered vote's answer, their credit, tokens generated of all (DataFrame)."""
    import pandas as pd

    prune = offline.chosen[(method, seed_index)]["prune_at"]
    kept = prune < 0
    everything = np.ones_like(kept)
    unf, filt = vote_winner(ss, everything), vote_winner(ss, kept)
    cu = offline.credits[("majority", -1)]
    cf = offline.credits[(method, seed_index)]
    gen = np.where(kept, ss.length, np.minimum(prune + 1, ss.length))
    rows = []
    for qi, prompt in enumerate(ss.prompts):
        m = ss.question == qi
        right = [a for a, ok in zip(ss.answers[qi], ss.group_correct[qi]) if ok]
        rows.append({"question": prompt, "samples": int(m.sum()), "correct": int(ss.correct[m].sum()),
                     "kept": int(kept[m].sum()), "kept correct": int((kept & ss.correct)[m].sum()),
                     "right answer": right[0] if right else None, "vote (all)": unf[qi],
                     "vote (kept)": filt[qi], "credit (all)": float(cu[qi]), "credit (kept)": float(cf[qi]),
                     "tokens generated": int(gen[m].sum()), "tokens (all)": int(ss.length[m].sum())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ headless


def filter_majority_vote(p: FilteringParams) -> FilteringResult:
    """Everything notebook 03 does, headless."""
    run = start_run(p)
    seed_everything(p.seed)
    setup = load_setup(p)
    samples = build_samples(p, run, setup)
    scores = score_all(p, setup, samples)
    offline = evaluate_offline(p, samples, scores, setup.rm_seeds)
    online = evaluate_online(p, setup, samples, offline) if online_possible(p, setup) else []
    return finish(p, run, setup, samples, scores, offline, online)


def online_possible(p: FilteringParams, setup: RMSetup) -> bool:
    """Online pruning needs the policy and the toy world's verifier for what it generates: a toy-world run of
    notebook 01 and no `generations` file."""
    return p.online.enabled and not p.generations and setup.rm_params.data.kind == "toy"
