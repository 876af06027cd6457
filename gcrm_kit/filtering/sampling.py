"""Where the samples come from: drawn from the notebook-01 policy on toy-world questions (labelled by the toy
world's verifier), on a real-data run's evaluation set (labelled against reference answers), or read from a file
of generation records, and split into validation and test questions (`build_samples`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..data import GenerationRecord, load_jsonl, save_jsonl
from ..device import resolve_device
from ..generation import sample_responses
from ..params import FilteringParams
from ..real_data import answers_match, extract_answer
from ..runs import Run, cached, params_hash
from ..toyworld import MARK_CHARS, SPLITS, sample_problem, verify
from .decoding import generate_pruned
from .methods import SETS
from .samples import SampleSet, make_sample_set
from .setup import RMSetup


def toy_questions(p: FilteringParams, exclude: set[str]):
    """`n_validation_questions + n_test_questions` distinct problems of `p.split`, none of whose prompts is in
    `exclude` (the reward models' training and held-out pairs)."""
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
        policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(resolve_device(p.device))
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
        policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir, dtype="auto").to(resolve_device(p.device))
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
