"""Answer scores comparable with published figures: ROUGE-L equal to the rouge-score package's, token F1 and exact
match equal to SQuAD's definition on Latin-alphabet text, and scripts without spaces scored per character."""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from tunesmith.eval.text_metrics import exact_match, rouge_l, token_f1

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
VOCABULARY = ["the", "a", "cat", "Cat", "sat", "on", "mat", "mat.", "don't", "it's", "U.S.", "42", "x-ray", "well,",
              "(yes)", "an", "and", "_id", "e-mail"]  # fmt: skip
WORDS = st.lists(st.sampled_from(VOCABULARY), max_size=12)
ASCII = st.one_of(WORDS.map(" ".join), st.text(alphabet=string.printable, max_size=40))


def squad_f1(prediction: str, reference: str) -> float:
    """SQuAD v2's definition, written from its evaluation script's description."""

    def norm(s: str) -> list[str]:
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split()).split()

    p, g = norm(prediction), norm(reference)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


@settings(max_examples=300, deadline=None)
@given(prediction=ASCII, reference=ASCII)
def test_rouge_l_equals_rouge_score(prediction, reference):
    assert rouge_l(prediction, reference) == pytest.approx(SCORER.score(reference, prediction)["rougeL"].fmeasure)


@settings(max_examples=300, deadline=None)
@given(prediction=ASCII, reference=ASCII)
def test_token_f1_equals_squad(prediction, reference):
    assert token_f1(prediction, reference) == pytest.approx(squad_f1(prediction, reference))


def test_scripts_without_spaces_are_scored_per_character():
    # 猫 が 座 っ た against 猫 が 寝 た: three characters in common
    assert token_f1("猫が座った", "猫が寝た") == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert rouge_l("猫が座った", "猫が寝た") > 0  # rouge-score drops these characters and scores 0
    assert rouge_l("天空是蓝色的", "天空是蓝色的") == 1.0 and exact_match("天空是蓝色的。", "天空是蓝色的。") == 1.0
    assert token_f1("서울은 크다", "서울은 작다") == pytest.approx(0.8)  # 4 of 5 syllables shared
    assert rouge_l("café au lait", "café noir") == pytest.approx(0.4)  # é stays a letter
