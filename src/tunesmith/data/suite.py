"""The recipe suite's real datasets, written as plain files the way a user's own data would arrive.

Each converter reads a source that ships inside a package (chatterbot-corpus, the Debian python3.11-doc pages,
scikit-learn, the Debian Fashion-MNIST files), writes ``train`` and ``validation`` files into ``out`` and
returns their paths. Splits are seeded and grouped so that no validation text repeats a training one (a FAQ
question, a documentation page). ``python -m tunesmith.examples NAME --out DIR`` calls them.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.images import open_idx
from tunesmith.errors import InputError
from tunesmith.files import write_jsonl

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def _need(path: Path, package: str) -> Path:
    if not path.exists():
        raise InputError(f"{path} is missing: this dataset needs the Debian package {package} (make install does it)")
    return path


def _write_csv(path: Path, rows: list[dict[str, str]], fields: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def _grouped_split(
    groups: dict[str, list[Any]], n_train: int, n_val: int, seed: int, label_of: Any, balanced: bool = False
) -> tuple[list[Any], list[Any]]:
    """Whole groups go to validation until each class has its share of ``n_val``, the rest to training (capped
    at ``n_train``): related texts (one page, one question) never straddle the split. Shares follow the classes'
    sizes, or are equal with ``balanced``."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        by_class[label_of(groups[key][0])].append(key)
    total = sum(len(v) for v in groups.values())
    train: list[Any] = []
    val: list[Any] = []
    for label in sorted(by_class):
        keys = by_class[label]
        rng.shuffle(keys)
        share = 1 / len(by_class) if balanced else sum(len(groups[k]) for k in keys) / total
        want_val = max(1, round(n_val * share))
        want_train = max(2, round(n_train * share))
        got_val: list[Any] = []
        got_train: list[Any] = []
        for k in keys:
            if len(got_val) < want_val and len(keys) > 1 and k != keys[-1]:
                got_val.extend(groups[k])
            elif len(got_train) < want_train:
                got_train.extend(groups[k])
        val.extend(got_val[:want_val])
        train.extend(got_train[:want_train])
    order_t, order_v = rng.permutation(len(train)), rng.permutation(len(val))
    return [train[i] for i in order_t], [val[i] for i in order_v]


# --- chatterbot questions, labelled by their topic file (many classes) -------------------------------------------
def intents(out: Path, n_train: int, n_val: int, seed: int = 0, min_questions: int = 8) -> tuple[Path, Path]:
    """Every question of the English chatterbot corpus labelled by its topic (ai, food, history, ...): an intent
    set in many classes. Questions asked word for word in two topics are dropped (no right answer), and so are
    topics with fewer than ``min_questions`` questions (too few to both learn and test)."""
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise InputError("this dataset needs `pip install --no-deps chatterbot-corpus==1.3.3` (make install)")
    topics: dict[str, set[str]] = defaultdict(set)
    shown: dict[str, str] = {}
    for path in sorted((Path(spec.origin).parent / "data" / "english").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conv in doc.get("conversations") or []:
            if conv and isinstance(conv[0], str) and conv[0].strip():
                text = " ".join(conv[0].split())
                key = text.lower().rstrip("?.! ")
                topics[key].add(path.stem)
                shown.setdefault(key, text)
    groups = {k: [{"text": shown[k], "label": next(iter(t))}] for k, t in topics.items() if len(t) == 1}
    sizes: dict[str, int] = defaultdict(int)
    for rows in groups.values():
        sizes[rows[0]["label"]] += 1
    groups = {k: v for k, v in groups.items() if sizes[v[0]["label"]] >= min_questions}
    train, val = _grouped_split(groups, n_train, n_val, seed, lambda r: r["label"])
    return _write_csv(out / "train.csv", train, ["text", "label"]), _write_csv(
        out / "validation.csv", val, ["text", "label"]
    )


# --- the Python documentation: FAQ questions and answers, long passages ------------------------------------------
_ROLE = re.compile(r":[a-z:]+:`(?:[^`<]*<)?([^`>]*)>?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")


def plain_rst(text: str) -> str:
    """reStructuredText as readable prose: roles reduced to their text, directives and markup dropped."""
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. ") or re.fullmatch(r"[=\-~^*#+]{3,}", stripped):
            continue
        keep.append(line)
    out = _LINK.sub(r"\1", _ROLE.sub(r"\1", "\n".join(keep)))
    out = out.replace("``", "").replace("**", "").replace("::", ":")
    return re.sub(r"[ \t]+", " ", out)


def faq_entries() -> list[dict[str, str]]:
    """Every question of the Python FAQ with its answer and its section (the FAQ page it is on)."""
    root = _need(PYTHON_DOCS / "faq", "python3.11-doc")
    entries = []
    for page in sorted(root.glob("*.rst.txt")):
        lines = page.read_text(encoding="utf-8").splitlines()
        heads = [
            i
            for i in range(len(lines) - 1)
            if lines[i].strip() and re.fullmatch(r"[-=]{3,}", lines[i + 1].strip()) and not lines[i].startswith("=")
        ]
        for n, i in enumerate(heads):
            if not re.fullmatch(r"-{3,}", lines[i + 1].strip()):
                continue  # a section title, not a question
            end = heads[n + 1] if n + 1 < len(heads) else len(lines)
            answer = "\n".join(lines[i + 2 : end])
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", plain_rst(answer)) if p.strip()]
            section = page.name.removesuffix(".rst.txt")
            entries.append({"question": lines[i].strip(), "paragraphs": paragraphs, "section": section})
    return [e for e in entries if e["paragraphs"]]


def python_faq(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """A few-shot set: FAQ questions labelled by their section (general, programming, design, library,
    extending, windows, gui, installed); under 200 examples in all."""
    groups = {e["question"].lower(): [{"text": e["question"], "label": e["section"]}] for e in faq_entries()}
    train, val = _grouped_split(groups, n_train, n_val, seed, lambda r: r["label"])
    return _write_csv(out / "train.csv", train, ["text", "label"]), _write_csv(
        out / "validation.csv", val, ["text", "label"]
    )


def python_faq_chat(out: Path, n_train: int, n_val: int, seed: int = 0, words: int = 120) -> tuple[Path, Path]:
    """Chat with long answers: each FAQ question and its answer (whole paragraphs, up to about ``words``
    words), as chat JSONL with the section as a slice column."""
    groups = {}
    for e in faq_entries():
        kept: list[str] = []
        for p in e["paragraphs"]:
            if kept and sum(len(k.split()) for k in kept) + len(p.split()) > words:
                break
            kept.append(p)
        msgs = [{"role": "user", "content": e["question"]}, {"role": "assistant", "content": "\n\n".join(kept)}]
        groups[e["question"].lower()] = [{"messages": msgs, "category": e["section"]}]
    train, val = _grouped_split(groups, n_train, n_val, seed, lambda r: r["category"])
    paths = out / "train.jsonl", out / "validation.jsonl"
    write_jsonl(paths[0], train)
    write_jsonl(paths[1], val)
    return paths


def python_faq_rag(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """The knowledge-base example: the FAQ chat split of ``python_faq_chat`` (the same questions held out), and the
    same questions as (query, passage) pairs for tuning the encoder (``pairs_train.jsonl``, ``pairs_validation.jsonl``;
    the passage is the whole answer, at most about 200 words). The documents are the python3.11-doc sources
    themselves (``tunesmith kb build``)."""
    train, val = python_faq_chat(out, n_train, n_val, seed)
    answers = {}
    for e in faq_entries():
        kept: list[str] = []
        for p in e["paragraphs"]:
            if kept and sum(len(k.split()) for k in kept) + len(p.split()) > 200:
                break
            kept.append(p)
        answers[e["question"]] = "\n\n".join(kept)
    for chat, name in ((train, "pairs_train.jsonl"), (val, "pairs_validation.jsonl")):
        rows = [json.loads(line) for line in chat.read_text(encoding="utf-8").splitlines()]
        questions = [r["messages"][0]["content"] for r in rows]
        write_jsonl(out / name, [{"query": q, "passage": answers[q], "category": r["category"]}
                                 for q, r in zip(questions, rows)])  # fmt: skip
    return train, val


def _toctree(page: Path) -> list[str]:
    """The pages a reStructuredText page's toctree lists (``name.rst`` entries, relative to its folder)."""
    return re.findall(r"^\s+([\w.-]+)\.rst\s*$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)


def python_docs(
    out: Path, n_train: int, n_val: int, seed: int = 0, chars: int = 2000, topics: int = 6
) -> tuple[Path, Path]:
    """Long documents by topic: the standard library's module pages cut into passages of about ``chars``
    characters (whole paragraphs), labelled by the library chapter that lists the module (text processing,
    internet protocols, concurrency, ...); the ``topics`` chapters with the most text, split by page."""
    library = _need(PYTHON_DOCS / "library", "python3.11-doc")
    groups: dict[str, list[dict[str, str]]] = {}
    for chapter in _toctree(library / "index.rst.txt"):
        index = library / f"{chapter}.rst.txt"
        if not index.is_file():
            continue
        for module in _toctree(index):
            page = library / f"{module}.rst.txt"
            if not page.is_file():
                continue
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", plain_rst(page.read_text("utf-8")))]
            passages, current = [], ""
            for p in paragraphs:
                if not p:
                    continue
                current = f"{current}\n\n{p}" if current else p
                if len(current) >= chars:
                    passages.append(current[: int(chars * 1.25)])
                    current = ""
            if passages:
                groups[module] = [{"text": t, "label": chapter, "page": module} for t in passages]
    size: dict[str, int] = defaultdict(int)
    for rows in groups.values():
        size[rows[0]["label"]] += len(rows)
    chosen = set(sorted(size, key=lambda c: (-size[c], c))[:topics])
    groups = {k: v for k, v in groups.items() if v[0]["label"] in chosen}
    train, val = _grouped_split(groups, n_train, n_val, seed, lambda r: r["label"], balanced=True)
    fields = ["text", "label", "page"]  # page: data.group_column keeps a page's passages on one side of a split
    return _write_csv(out / "train.csv", train, fields), _write_csv(out / "validation.csv", val, fields)


# --- images ---------------------------------------------------------------------------------------------------------
def _write_images(out: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, (images, labels) in splits.items():
        path = out / f"{split}.npz"
        np.savez_compressed(path, images=images, labels=np.array([names[i] for i in labels]))
        paths.append(path)
    return paths[0], paths[1]


def _stratified(labels: np.ndarray, n_train: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if n_train + n_val > len(labels):
        raise InputError(f"asked for {n_train + n_val} images; the set has {len(labels)}")
    return order[:n_train], order[n_train : n_train + n_val]


def digits(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """scikit-learn's 1,797 hand-written digits (8x8, 17 grey levels) as 8-bit images in .npz files."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255 / 16), 0, 255).astype(np.uint8)
    tr, va = _stratified(d.target, n_train, n_val, seed)
    names = [str(i) for i in range(10)]
    return _write_images(out, {"train": (images[tr], d.target[tr]), "validation": (images[va], d.target[va])}, names)


def fashion_mnist(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """A seeded sample of Fashion-MNIST: training images from its training files, validation from its test."""
    root = _need(FASHION, "dataset-fashion-mnist")
    tr_x, tr_y = open_idx(root / "train-images-idx3-ubyte.gz"), open_idx(root / "train-labels-idx1-ubyte.gz")
    te_x, te_y = open_idx(root / "t10k-images-idx3-ubyte.gz"), open_idx(root / "t10k-labels-idx1-ubyte.gz")
    tr, _ = _stratified(tr_y, n_train, 0, seed)
    va, _ = _stratified(te_y, n_val, 0, seed)
    return _write_images(out, {"train": (tr_x[tr], tr_y[tr]), "validation": (te_x[va], te_y[va])}, FASHION_NAMES)


def _islp_csv(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("ISLP")
    if spec is None or spec.origin is None:
        raise InputError("this dataset needs the package ISLP==0.6.0 (make install: pip install --no-deps ISLP==0.6.0)")
    return Path(spec.origin).parent / "data" / f"{name}.csv"


def _table_split(rows: list[dict[str, str]], label: str, n_train: int, n_val: int, seed: int) -> tuple[list, list]:
    """Each class keeps its share in both splits (seeded); the rows keep the file's order."""
    if n_train + n_val > len(rows):
        raise InputError(f"asked for {n_train + n_val} rows; the table has {len(rows)}")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r[label]].append(i)
    train, val = [], []
    for idx in by_label.values():
        idx = list(rng.permutation(idx))
        k_val = round(len(idx) * n_val / len(rows))
        k_train = round(len(idx) * n_train / len(rows))
        val += idx[:k_val]
        train += idx[k_val : k_val + k_train]
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(val)]


def islp_table(name: str, label: str, out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """An ISLP table as train.csv and validation.csv, stratified on the label."""
    with _islp_csv(name).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows, fields = list(reader), list(reader.fieldnames or [])
    fields = [f for f in fields if f]  # a leading unnamed index column, where the file has one
    rows = [{k: r[k] for k in fields} for r in rows]
    train, val = _table_split(rows, label, n_train, n_val, seed)
    out.mkdir(parents=True, exist_ok=True)
    return _write_csv(out / "train.csv", train, fields), _write_csv(out / "validation.csv", val, fields)


def credit_default(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """ISLP's Default: 10,000 card holders, 3.3% of whom defaulted (student, balance, income -> default)."""
    return islp_table("Default", "default", out, n_train, n_val, seed)


def caravan(out: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """ISLP's Caravan: 5,822 customers, 85 socio-demographic and product columns, 6.0% bought caravan insurance."""
    return islp_table("Caravan", "Purchase", out, n_train, n_val, seed)
