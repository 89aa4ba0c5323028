"""Mislabel detection on the recipe suite's text and image sets: 5% of the training labels flipped to another class
(seeded), then `tunesmith check-labels` (out-of-fold scores on the default model's frozen features: MiniLM for
texts, EfficientNet-Lite0 for images; confident learning) against the
naive reading a user would try first (the same linear model fitted on all the data, the examples with the lowest
probability of their own label flagged, as many as check-labels flags). Precision and recall of each, in one run.

    python bench/bench_check_labels.py                         # rotten-tomatoes, intents, python-faq
    python bench/bench_check_labels.py --only digits,fashion-mnist
    python bench/bench_check_labels.py --only intents --rate 0.1
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

IMAGE_SETS = {"digits", "fashion-mnist"}


def flip(labels: list[str], rate: float, seed: int) -> tuple[list[str], set[int]]:
    """``rate`` of the labels changed to another class's; returns the labels and the positions flipped."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    chosen = rng.choice(len(labels), size=max(1, int(rate * len(labels))), replace=False)
    out = list(labels)
    for i in chosen:
        others = [lab for lab in names if lab != out[i]]
        out[i] = others[rng.integers(len(others))]
    return out, {int(i) for i in chosen}


def noisy_copy(suite: str, name: str, tmp: Path, rate: float, seed: int) -> tuple[Path, set[int], str]:
    """The set's training split with flipped labels (a CSV, or an .npz for images), the flipped examples' lines
    as check-labels numbers them (a CSV's line 1 is its header; an array file's rows count from 1), the task."""
    if name in IMAGE_SETS:
        with np.load(f"{suite}/{name}/train.npz", allow_pickle=False) as z:
            images, labels = z["images"], [str(v) for v in z["labels"]]
        noisy, flipped = flip(labels, rate, seed)
        train = tmp / f"{name}.npz"
        np.savez(train, images=images, labels=np.array(noisy))
        return train, {i + 1 for i in flipped}, "image-classification"
    with open(f"{suite}/{name}/train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    noisy, flipped = flip([r["label"] for r in rows], rate, seed)
    train = tmp / f"{name}.csv"
    with train.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "label": lab} for r, lab in zip(rows, noisy))
    return train, {i + 2 for i in flipped}, "text-classification"


def naive(cfg_path: Path, flagged: int) -> set[int]:
    """In-sample: fit on everything, flag the lowest probabilities of the given label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tunesmith import config as cfgmod
    from tunesmith.pipeline.finetune import check

    c = check(cfgmod.load(cfg_path))
    prep = c.task.prepare(c.preprocessor, c.data, c.input_size)
    frozen = c.task.before_training(c.task.build_model(c.source, c.data), prep, c.source, True)
    feats = frozen.get()
    x = np.concatenate([feats[s]["mean"] for s in ("train", "select") if s in feats])
    ex = c.data.all_train
    index = {lab: i for i, lab in enumerate(c.data.labels)}
    y = np.array([index[lab] for lab in ex.labels])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(x, y)
    p_given = model.predict_proba(x)[np.arange(len(y)), y]
    return {ex.lines[i] for i in np.argsort(p_given)[:flagged]}


def pr(flags: set[int], flipped: set[int]) -> tuple[float, float]:
    """Precision and recall of the flagged lines."""
    hit = len(flags & flipped)
    return (hit / len(flags) if flags else 0.0), hit / len(flipped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="data/suite")
    ap.add_argument("--only", default="rotten-tomatoes,intents,python-faq")
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from tunesmith import api

    print(
        "| dataset | train | flipped | flagged | check-labels P / R | P in its top N=flipped | naive P / R | recall x "
        "| out-of-fold accuracy | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in a.only.split(",") if n]:
            train, flipped, task = noisy_copy(a.suite, name, Path(tmp), a.rate, a.seed)
            val = f"{a.suite}/{name}/validation.{'npz' if task == 'image-classification' else 'csv'}"
            cfg = Path(tmp) / f"{name}.yaml"
            cfg.write_text(yaml.safe_dump({
                "task": task, "model": "efficientnet-lite0" if task == "image-classification" else "minilm-l6",
                "data": {"train": str(train), "validation": val}, "output_dir": str(Path(tmp) / "runs"),
            }))  # fmt: skip
            t = time.perf_counter()
            found = api.check_labels(cfg)
            seconds = time.perf_counter() - t
            ours = {s.line for s in found.suspects}
            theirs = naive(cfg, len(ours))
            (p1, r1), (p2, r2) = pr(ours, flipped), pr(theirs, flipped)
            top = {s.line for s in found.suspects[: len(flipped)]}  # what a person reads first
            ratio = f"{r1 / r2:.2f}" if r2 else "-"
            print(
                f"| {name} | {found.examples} | {len(flipped)} | {len(ours)} | {100 * p1:.0f}% / {100 * r1:.0f}% | "
                f"{100 * len(top & flipped) / len(flipped):.0f}% | {100 * p2:.0f}% / {100 * r2:.0f}% | {ratio} | "
                f"{100 * found.accuracy:.1f}% | {seconds:.0f} |"
            )


if __name__ == "__main__":
    main()
