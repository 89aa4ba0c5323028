"""Scores of a generated answer against a reference, per example, comparable with the figures others publish:

- token F1 and exact match as SQuAD defines them (lower case, ASCII punctuation removed, the articles a/an/the
  removed, whitespace collapsed; F1 over the bag of words);
- ROUGE-L F1 as the ``rouge-score`` package computes it without stemming (lower case, anything but a-z and 0-9
  splits words; the longest common subsequence of words).

Both are identical to those definitions on text in the Latin alphabet (tests check it against the package and the
definition). Beyond it, two things differ, on purpose: text in scripts written without spaces (Chinese, Japanese
kana, Korean) is split into one token per character instead of being one word (SQuAD) or dropped (rouge-score),
and ROUGE keeps the letters of other alphabets in words instead of dropping them.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# CJK ideographs, kana and Hangul syllables: each character is a word
_CHARACTER_WORDS = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")
_ROUGE_SPLIT = re.compile(r"[\W_]+")


def squad_tokens(text: str) -> list[str]:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return _CHARACTER_WORDS.sub(r" \1 ", text).split()


def rouge_tokens(text: str) -> list[str]:
    text = _CHARACTER_WORDS.sub(r" \1 ", text.lower())
    return [t for t in _ROUGE_SPLIT.split(text) if t]


def _f1(common: int, predicted: int, reference: int) -> float:
    if common == 0:
        return 0.0
    precision, recall = common / predicted, common / reference
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    p, r = squad_tokens(prediction), squad_tokens(reference)
    if not p or not r:
        return float(p == r)
    return _f1(sum((Counter(p) & Counter(r)).values()), len(p), len(r))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common word subsequence, as precision and recall against the reference (0 when
    either side has no words, as rouge-score scores it)."""
    p, r = rouge_tokens(prediction), rouge_tokens(reference)
    if not p or not r:
        return 0.0
    return _f1(_lcs(p, r), len(p), len(r))


def exact_match(prediction: str, reference: str) -> float:
    return float(squad_tokens(prediction) == squad_tokens(reference))


METRICS = {"token_f1": token_f1, "rouge_l": rouge_l, "exact_match": exact_match}


def score_all(predictions: list[str], references: list[str], names: tuple[str, ...]) -> dict[str, list[float]]:
    return {n: [METRICS[n](p, r) for p, r in zip(predictions, references)] for n in names}
