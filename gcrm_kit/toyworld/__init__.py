"""The embedded default world: arithmetic problems, a verifier, a base corpus with self-checking marks (and, as an
option, misconceptions), a character tokenizer and a tiny Llama policy trained from scratch."""

from .corpus import MARK_CHARS, SlipModel, build_corpus, noisy_solution, strip_marks
from .misconceptions import MISCONCEPTIONS, Misconception, first_biting_step, misconception_solution
from .problems import SPLITS, Problem, SplitSpec, Verdict, parse_prompt, sample_problem, sample_problems, verify
from .tokenizer import build_tokenizer

__all__ = ["MARK_CHARS", "MISCONCEPTIONS", "SPLITS", "Misconception", "Problem", "SlipModel", "SplitSpec", "Verdict",
           "build_corpus", "build_tokenizer", "first_biting_step", "misconception_solution", "noisy_solution",
           "parse_prompt", "sample_problem", "sample_problems", "strip_marks", "verify"]
