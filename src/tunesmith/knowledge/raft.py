"""Questions with retrieved documents: how a generator is trained to use a knowledge base (RAFT) and asked in use.

Every question is written the same way at training, at evaluation and in use (``with_context``): an instruction, the
numbered chunks with their headings, then the question. In training (Zhang et al. 2024, "RAFT"), a share of the
questions (``retrieval.oracle_share``) gets the chunk that holds its answer among ``k - 1`` distractors; the rest
get distractors only and are taught to decline (``retrieval.without_answer: decline``) or to answer anyway
(``answer``, the paper's recipe). The chunk holding an answer is found by searching the knowledge base with the
answer itself and keeping the best hit that has at least ``retrieval.min_overlap`` of the answer's words.
Distractors are the question's own nearest chunks (the hard kind a retriever returns), not random ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.knowledge.index import Hit

INSTRUCTION = "Answer the question from the documents below. If they do not hold the answer, say that they do not."
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


def overlap(answer: str, text: str) -> float:
    """Share of the answer's distinct words found in ``text`` (0 for an answer without words)."""
    a = words(answer)
    return len(a & words(text)) / len(a) if a else 0.0


def context_block(hits: list[Hit]) -> str:
    parts = []
    for i, h in enumerate(hits, 1):
        head = f" {h.heading}" if h.heading else ""
        parts.append(f"[{i}]{head}\n{h.text}")
    return "\n\n".join(parts)


def with_context(question: str, hits: list[Hit]) -> str:
    return f"{INSTRUCTION}\n\nDocuments:\n\n{context_block(hits)}\n\nQuestion: {question}"


def question_of(record: dict[str, Any]) -> str | None:
    """The question a record asks: its last user message, or its prompt; None for plain text."""
    if "messages" in record:
        users = [m for m in record["messages"] if m["role"] == "user"]
        return users[-1]["content"] if users else None
    return record.get("prompt")


def answer_of(record: dict[str, Any]) -> str | None:
    """The reference answer: the assistant message after the last user message, or the completion."""
    if "messages" in record:
        msgs = record["messages"]
        last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=-1)
        after = [m for m in msgs[last_user + 1 :] if m["role"] == "assistant"]
        return after[0]["content"] if after else None
    return record.get("completion")


def rewrite(record: dict[str, Any], hits: list[Hit], answer: str | None = None) -> dict[str, Any]:
    """The record with its question given the chunks (and its answer replaced where ``answer`` is given)."""
    if "messages" in record:
        msgs = [dict(m) for m in record["messages"]]
        last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        msgs[last_user]["content"] = with_context(msgs[last_user]["content"], hits)
        if answer is not None:
            nxt = next(i for i in range(last_user + 1, len(msgs)) if msgs[i]["role"] == "assistant")
            msgs[nxt]["content"] = answer
        return {**record, "messages": msgs}
    out = {**record, "prompt": with_context(record["prompt"], hits)}
    if answer is not None:
        out["completion"] = answer
    return out


@dataclass(frozen=True)
class Plan:
    """What one training question is given: its chunks, whether the one holding the answer is among them, and
    the answer it is taught (None: its own)."""

    hits: list[Hit]
    oracle: Hit | None
    with_oracle: bool
    answer: str | None


def find_oracles(kb: Any, answers: list[str], min_overlap: float, depth: int = 5) -> list[Hit | None]:
    """The chunk holding each answer: the best of the ``depth`` chunks nearest the answer by meaning that has at
    least ``min_overlap`` of its words; None where none has."""
    out: list[Hit | None] = []
    for answer, hits in zip(answers, kb.search(answers, depth)):
        scored = [(overlap(answer, h.text), h) for h in hits]
        best = max(scored, key=lambda x: x[0], default=(0.0, None))
        out.append(best[1] if best[0] >= min_overlap else None)
    return out


def training_plans(kb: Any, records: list[dict[str, Any]], opts: Any, seed: int) -> list[Plan]:
    questions = [question_of(r) or "" for r in records]
    answers = [answer_of(r) or "" for r in records]
    oracles = find_oracles(kb, answers, opts.min_overlap)
    nearest = kb.search(questions, opts.k + 1)
    rng = np.random.default_rng(seed)
    plans = []
    for oracle, near in zip(oracles, nearest):
        distractors = [h for h in near if oracle is None or h.id != oracle.id][: opts.k]
        give_oracle = oracle is not None and rng.random() < opts.oracle_share
        if give_oracle:
            hits = [*distractors[: opts.k - 1], oracle]
            order = rng.permutation(len(hits))
            hits = [hits[i] for i in order]
        else:
            hits = distractors
        decline = not give_oracle and opts.without_answer == "decline"
        plans.append(Plan(hits, oracle, give_oracle, opts.decline if decline else None))
    return plans


def retrieved(kb: Any, records: list[dict[str, Any]], k: int) -> list[list[Hit]]:
    """The chunks a question gets in use: its ``k`` nearest."""
    return kb.search([question_of(r) or "" for r in records], k)


def support(answer: str, hits: list[Hit]) -> float:
    """How much of a written answer the chunks it was given hold: the share of its words found in them."""
    return overlap(answer, " ".join(f"{h.heading} {h.text}" for h in hits))
