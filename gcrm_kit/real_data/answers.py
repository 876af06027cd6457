"""Final answers of math solutions: extraction (\\boxed{}, "#### x", "A: x", "the answer is x", the last number),
normalisation, and whether a predicted answer matches a reference."""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) in `text`, braces balanced; None if there is none."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: \\boxed{} (MATH, OpenMath models), `#### x` (GSM8K), `A: x` (the GSM8K model
    samples), "the answer is x", else the last number in the text. None when nothing is found."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pat in (r"####\s*(.+)", r"(?:^|\n)\s*A:\s*(.+)", r"answer is\s*:?\s*\$?(" + _NUM + ")"):
        m = re.findall(pat, text, flags=re.I)
        if m:
            return m[-1].strip()
    nums = re.findall(_NUM, text)
    return nums[-1] if nums else None


def normalize_answer(ans: str) -> str:
    """Strip what does not change a math answer: $, commas in numbers, \\text{...} units, spaces, trailing dot,
    \\left/\\right, \\dfrac -> \\frac."""
    s = str(ans).strip()
    s = re.sub(r"\\text\{[^}]*\}", "", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("$", "").replace("\\!", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = s.replace(" ", "").rstrip(".")
    return s


def _as_number(s: str) -> float | None:
    m = re.fullmatch(r"\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        return float(Fraction(int(m[1]), int(m[2])))
    try:
        return float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, reference: str | float | int | None) -> bool:
    """Whether a predicted answer equals the reference: numerically (relative tolerance 1e-6) when both parse as
    numbers or fractions, else as normalised strings."""
    if predicted is None or reference is None:
        return False
    p, r = normalize_answer(str(predicted)), normalize_answer(str(reference))
    pn, rn = _as_number(p), _as_number(r)
    if pn is not None and rn is not None:
        return abs(pn - rn) <= 1e-6 * max(1.0, abs(rn))
    return p == r
