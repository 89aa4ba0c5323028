"""Training prompts for retrieval-aware fine-tuning: which chunks each question gets, and what it is taught."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.knowledge.index import Hit
from tunesmith.knowledge.raft import (
    INSTRUCTION,
    answer_of,
    find_oracles,
    overlap,
    question_of,
    rewrite,
    support,
    training_plans,
    with_context,
)

CHUNKS = [
    Hit(i, 0.0, f"doc{i}.md", i, i, f"Topic {i}", text)
    for i, text in enumerate(
        ["A cat says meow.", "A dog says woof.", "The sky is blue.", "Snow is white.", "A cow says moo."]
    )
]


@dataclass
class FakeBase:
    """Search by shared words (a stand-in for the encoder): enough to make the plans deterministic."""

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        out = []
        for q in queries:
            ranked = sorted(CHUNKS, key=lambda h: (-overlap(q, h.text), h.id))
            out.append(ranked[:k])
        return out


@dataclass
class Opts:
    k: int = 3
    oracle_share: float = 1.0
    without_answer: str = "decline"
    decline: str = "The documents do not answer this question."
    min_overlap: float = 0.5


def _chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q},
                         {"role": "assistant", "content": a}]}  # fmt: skip


RECORDS = [_chat("What does a cat say?", "A cat says meow."), {"prompt": "Colour of snow?", "completion": "white"}]


def test_question_and_answer_of_each_format() -> None:
    assert question_of(RECORDS[0]) == "What does a cat say?" and answer_of(RECORDS[0]) == "A cat says meow."
    assert question_of(RECORDS[1]) == "Colour of snow?" and answer_of(RECORDS[1]) == "white"
    assert question_of({"text": "x"}) is None


def test_oracles_need_most_of_the_answer_words() -> None:
    kb = FakeBase()
    found = find_oracles(kb, ["A cat says meow.", "white", "Penguins cannot fly."], 0.5)
    assert [h.id if h else None for h in found] == [0, 3, None]


def test_every_question_gets_its_answer_chunk_among_distractors() -> None:
    plans = training_plans(FakeBase(), RECORDS, Opts(oracle_share=1.0), seed=0)
    for plan, oracle in zip(plans, (0, 3)):
        assert plan.with_oracle and plan.answer is None and len(plan.hits) == 3
        assert [h.id for h in plan.hits].count(oracle) == 1 and len({h.id for h in plan.hits}) == 3


def test_distractors_only_are_taught_to_decline_or_to_answer() -> None:
    plans = training_plans(FakeBase(), RECORDS, Opts(oracle_share=0.0), seed=0)
    assert all(not p.with_oracle and p.answer == Opts.decline for p in plans)
    assert all(p.oracle.id not in [h.id for h in p.hits] for p in plans)
    raft = training_plans(FakeBase(), RECORDS, Opts(oracle_share=0.0, without_answer="answer"), seed=0)
    assert all(p.answer is None for p in raft)


def test_the_share_with_the_answer_chunk_follows_the_setting() -> None:
    many = [_chat(f"What does a cat say? {i}", "A cat says meow.") for i in range(400)]
    plans = training_plans(FakeBase(), many, Opts(oracle_share=0.8), seed=1)
    share = sum(p.with_oracle for p in plans) / len(plans)
    assert 0.75 < share < 0.85
    positions = {[h.id for h in p.hits].index(0) for p in plans if p.with_oracle}
    assert positions == {0, 1, 2}  # the answer chunk is not always in the same place


def test_rewrite_puts_the_documents_before_the_last_question_only() -> None:
    plan = training_plans(FakeBase(), RECORDS, Opts(oracle_share=0.0), seed=0)[0]
    out = rewrite(RECORDS[0], plan.hits, plan.answer)
    msgs = out["messages"]
    assert msgs[0] == RECORDS[0]["messages"][0] and msgs[2]["content"] == Opts.decline
    assert msgs[1]["content"] == with_context("What does a cat say?", plan.hits)
    assert msgs[1]["content"].startswith(INSTRUCTION) and msgs[1]["content"].endswith("Question: What does a cat say?")
    assert "[1] Topic" in msgs[1]["content"] and RECORDS[0]["messages"][1]["content"] == "What does a cat say?"
    pair = rewrite(RECORDS[1], CHUNKS[3:4])
    assert pair["completion"] == "white" and "Snow is white." in pair["prompt"]


def test_support_is_the_share_of_answer_words_in_the_chunks() -> None:
    assert support("A cat says meow", CHUNKS[:1]) == 1.0
    assert support("A cat says purr", CHUNKS[:1]) == 0.75
