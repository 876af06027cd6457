"""The embedded default world: arithmetic problems, a verifier, a base corpus with self-checking marks, a
character tokenizer and a tiny Llama policy trained from scratch."""

from .corpus import MARK_CHARS, SlipModel, build_corpus, noisy_solution, strip_marks
from .problems import SPLITS, Problem, SplitSpec, Verdict, parse_prompt, sample_problem, sample_problems, verify
from .tokenizer import build_tokenizer

__all__ = ["MARK_CHARS", "SPLITS", "Problem", "SlipModel", "SplitSpec", "Verdict", "build_corpus",
           "build_tokenizer", "noisy_solution", "parse_prompt", "sample_problem", "sample_problems",
           "strip_marks", "verify"]
