"""Solutions sampled from the toy policy and labelled by the verifier, cached by what produces them.

Notebook 01 draws its preference pairs and evaluation sets here; later notebooks find the same records again
through the same cache key (`gcrm_kit.rm_runs.eval_records_of_run`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..data import GenerationRecord, load_jsonl, save_jsonl
from ..generation import sample_responses
from ..params import RMTrainingParams
from ..runs import cached
from .corpus import MARK_CHARS
from .policy import policy_cache_key
from .problems import SPLITS, sample_problems, verify


def sample_split(policy_dir: Path, split: str, n_questions: int, samples_per_question: int, temperature: float,
                 max_new_tokens: int, batch_size: int, seed: int) -> list[GenerationRecord]:
    """Draw `n_questions` problems of `split`, sample solutions from the policy, and label them with the verifier.

    Each record's meta holds the split, a question id, and the first wrong step's character offset in the
    response (None when all steps are right)."""
    rng = np.random.default_rng([seed, 2, sum(map(ord, split))])
    problems = sample_problems(rng, SPLITS[split], n_questions)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    outs = sample_responses(model, tokenizer, [q.prompt for q in problems], n=samples_per_question,
                            temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            suppress_tokens=list(MARK_CHARS), seed=seed, desc=f"sampling {split}")
    records = []
    for qid, (prob, responses) in enumerate(zip(problems, outs)):
        for resp in responses:
            v = verify(prob, resp)
            records.append(GenerationRecord(
                prompt=prob.prompt, response=resp, is_correct=v.is_correct,
                answer=None if v.answer is None else str(v.answer),
                meta={"split": split, "question_id": qid, "first_error_char": v.first_error_char,
                      "well_formed": v.well_formed}))
    return records


def cached_samples(p: RMTrainingParams, cache_root: Path, policy_dir: Path, split: str, purpose: str
                   ) -> list[GenerationRecord]:
    """Sampled, labelled solutions for `split`, cached by the params that produce them.

    purpose `pairs` uses p.pairs (many samples per question, for preference pairs), `eval` uses p.evaluation (one
    per question), `best_of_n` p.evaluation's best-of-n settings (max(best_of_n) per question)."""
    e = p.evaluation
    if purpose == "pairs":
        s = p.pairs
        args = dict(n_questions=s.n_questions, samples_per_question=s.samples_per_question,
                    temperature=s.temperature, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size)
    elif purpose == "eval":
        args = dict(n_questions=e.n_questions, samples_per_question=1, temperature=e.temperature,
                    max_new_tokens=p.pairs.max_new_tokens, batch_size=e.batch_size)
    elif purpose == "best_of_n":
        args = dict(n_questions=e.best_of_n_questions, samples_per_question=max(e.best_of_n),
                    temperature=e.temperature, max_new_tokens=p.pairs.max_new_tokens, batch_size=e.batch_size)
    else:
        raise ValueError(f"purpose {purpose!r}: expected pairs, eval or best_of_n")
    seed = p.seed * 1000 + {"pairs": 1, "eval": 2, "best_of_n": 3}[purpose]
    # keyed by what produced the policy (its cache key.json: world, training params and the seed that was accepted,
    # which may differ from p.seed, see toyworld.policy.choose_policy)
    key_file = Path(policy_dir) / "key.json"
    policy_key = (json.loads(key_file.read_text()) if key_file.is_file()
                  else policy_cache_key(p.world, p.policy, p.seed))
    # the batch size is part of the key: samples of one batch share a random stream (generation.sample_responses)
    key = {"artifact": "samples", "version": 1, "policy": policy_key, "split": split, "seed": seed, **args}

    def build(d: Path) -> None:
        save_jsonl(sample_split(policy_dir, split, seed=seed, **args), d / "records.jsonl")

    return load_jsonl(cached(cache_root, "samples", key, build) / "records.jsonl", GenerationRecord)
