"""Scores of a generated answer against a reference: token-level F1, ROUGE-L and exact match, per example.

Both texts are normalised the usual way for answer scoring (lower case, punctuation and the articles a/an/the
removed, whitespace collapsed) and split into words.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> list[str]:
    text = _PUNCT.sub(" ", text.lower())
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalise(prediction), normalise(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: longest common word subsequence, as precision and recall against the reference."""
    p, r = normalise(prediction), normalise(reference)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


METRICS = {"token_f1": token_f1, "rouge_l": rouge_l, "exact_match": exact_match}


def score_all(predictions: list[str], references: list[str], names: tuple[str, ...]) -> dict[str, list[float]]:
    return {n: [METRICS[n](p, r) for p, r in zip(predictions, references)] for n in names}
