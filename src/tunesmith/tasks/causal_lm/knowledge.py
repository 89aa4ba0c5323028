"""Causal-LM with ``data.knowledge_base``: every question given retrieved chunks, the same way in training,
evaluation and use (knowledge/raft.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tunesmith.config import Config
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import DataError
from tunesmith.knowledge.base import KnowledgeBase
from tunesmith.knowledge.raft import retrieved, rewrite, training_plans


def with_knowledge(
    cfg: Config, fmt: str, train: Examples, select: Examples | None, val: Examples, report: DataReport
) -> tuple[Examples, Examples | None, Examples, str]:
    """Every question given chunks of ``data.knowledge_base`` (knowledge/raft.py): training questions the chunk
    holding their answer among distractors (or distractors only, and the answer ``retrieval.without_answer`` says);
    selection and validation questions their nearest chunks, as in use."""
    if fmt == "text":
        why = "data.knowledge_base needs questions with answers (chat or prompt-completion data); plain text has none"
        report.add("error", "knowledge_base", why, train.source, field="data.knowledge_base")
        raise DataError(report.problems)
    kb = KnowledgeBase.named(cfg.data.knowledge_base)
    opts = cfg.retrieval
    plans = training_plans(kb, train.inputs, opts, cfg.train.seed)

    def replaced(ex: Examples, records: list[dict[str, Any]]) -> Examples:
        return dataclasses.replace(ex, inputs=records, keys=[json.dumps(r, sort_keys=True) for r in records])

    train = replaced(train, [rewrite(r, p.hits, p.answer) for r, p in zip(train.inputs, plans)])
    if select is not None:
        select = replaced(select, [rewrite(r, h) for r, h in zip(select.inputs, retrieved(kb, select.inputs, opts.k))])
    val = replaced(val, [rewrite(r, h) for r, h in zip(val.inputs, retrieved(kb, val.inputs, opts.k))])
    found = sum(p.oracle is not None for p in plans)
    report.stats["knowledge_base"] = {
        "name": kb.name, "path": str(kb.folder.resolve()), "build": kb.version, "fingerprint": kb.fingerprint,
        "k": opts.k, "chunks": kb.index.count(),
        "answer chunk found": f"{found} of {len(plans)} training questions",
        "given the answer chunk": sum(p.with_oracle for p in plans),
        "distractors only": f"{sum(not p.with_oracle for p in plans)} (taught: {opts.without_answer})",
    }  # fmt: skip
    if found < len(plans) / 2:
        report.add("warning", "answers_not_found", f"the knowledge base holds the answers of only {found} of "
                   f"{len(plans)} training questions (retrieval.min_overlap {opts.min_overlap}): are these the "
                   "right documents?", train.source, field="data.knowledge_base")  # fmt: skip
    return train, select, val, kb.fingerprint
