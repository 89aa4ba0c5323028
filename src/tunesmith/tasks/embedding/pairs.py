"""(query, passage) pairs: read with file:line:field errors, and the corpus the queries are searched in."""

from __future__ import annotations

import hashlib
from typing import Any

from tunesmith.config import Config
from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, Examples, require_columns
from tunesmith.errors import DataError

PAIR = "pair"  # every pair's "label": splits then move whole passages (the groups), never a class


def passage_key(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def read_pairs(path: str, cfg: Config, report: DataReport) -> tuple[Examples | None, str]:
    """Examples whose inputs are (query, passage); groups are the passages, so a held-out split holds out whole
    passages (its queries must find passages no training query was paired with)."""
    try:
        table = read_table(path)
    except DataError as exc:
        report.problems.extend(exc.problems)
        return None, ""
    d = cfg.data
    if not require_columns(table, [("data.query_column", d.query_column), ("data.passage_column", d.passage_column)],
                           report):  # fmt: skip
        return None, table.fingerprint
    inputs, lines, keys, groups = [], [], [], []
    for row, line in zip(table.rows, table.lines):
        pair = []
        for col in (d.query_column, d.passage_column):
            value = row.get(col)
            if not isinstance(value, str) or not value.strip():
                kind = "missing" if value is None else ("empty" if isinstance(value, str) else "not text")
                report.add("error", "non_text", f"value is {kind}; every pair needs a query and a passage",
                           table.path, line, col)  # fmt: skip
            else:
                pair.append(value)
        if len(pair) == 2:
            inputs.append((pair[0], pair[1]))
            lines.append(line)
            keys.append(" ".join(pair[0].split()).casefold() + "\x1f" + passage_key(pair[1]))
            groups.append(passage_key(pair[1]))
    examples = Examples(table.path, inputs, [PAIR] * len(inputs), lines, keys=keys, groups=groups, group_by="passage")
    return examples, table.fingerprint


def corpus_of(splits: list[Examples], extra: list[str]) -> tuple[list[str], dict[str, int]]:
    """Every distinct passage of the splits, then the extra texts (a knowledge base's chunks) not already in;
    with the index of each passage key."""
    texts: list[str] = []
    index: dict[str, int] = {}
    for text in [p for ex in splits for _, p in ex.inputs] + extra:
        key = passage_key(text)
        if key not in index:
            index[key] = len(texts)
            texts.append(text)
    return texts, index


def relevant_sets(queries: Examples, every: list[Examples], index: dict[str, int]) -> list[set[int]]:
    """For each query, the corpus indices of every passage any split pairs it with (a query may have several)."""
    by_query: dict[str, set[int]] = {}
    for ex in every:
        for q, p in ex.inputs:
            by_query.setdefault(" ".join(q.split()).casefold(), set()).add(index[passage_key(p)])
    return [by_query[" ".join(q.split()).casefold()] for q, _ in queries.inputs]


def knowledge_texts(spec: str | None) -> list[str]:
    if not spec:
        return []
    from tunesmith.knowledge.base import KnowledgeBase

    return [f"{h.heading}\n\n{h.text}" if h.heading else h.text for h in KnowledgeBase.named(spec).chunks()]


def describe(ex: Examples) -> dict[str, Any]:
    return {"pairs": len(ex), "passages": len(set(ex.groups)), "queries": len({q for q, _ in ex.inputs})}
