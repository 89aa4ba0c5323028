"""Learning curves on the recipe suite's text and image sets: how many labels each label-next strategy needs to
reach 95% of the accuracy of a model trained on all the training labels, against random picks (several seeds), in
one run.

The model is the one `tunesmith label-next CONFIG` scores with (a logistic regression on the frozen features of the
default model: MiniLM's mean-pooled text features, EfficientNet-Lite0's pooled image features; its strength chosen
by cross-validation); the pools are read and embedded by the same code (the tasks' PoolKinds) and the picks come
from tunesmith.labels.select.choose, starting from a cold start of k examples; the training split is the pool, the
validation split is the test. Each round adds k labels.

    python bench/bench_active.py                                   # every suite text and image set
    python bench/bench_active.py --only intents --seeds 5
    python bench/bench_active.py --only digits,fashion-mnist
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

SETS = ("rotten-tomatoes", "intents", "python-docs", "python-faq", "digits", "fashion-mnist")
IMAGE_SETS = {"digits": "efficientnet-lite0", "fashion-mnist": "efficientnet-lite0"}
STRATEGIES = ("margin", "entropy", "diverse")


def embedded(folder: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(frozen features, labels, near-duplicate threshold) of one split, read and embedded as label-next reads and
    embeds a pool."""
    from tunesmith.tasks.image_classification.pool import ImagePool
    from tunesmith.tasks.text_classification.pool import TextPool

    if name in IMAGE_SETS:
        kind, path, model, column = ImagePool(), folder / f"{split}.npz", IMAGE_SETS[name], "path"
    else:
        kind, path, model, column = TextPool(), folder / f"{split}.csv", "minilm-l6", "text"
    pool = kind.read(path, column, "label", None)
    x = kind.encoder(model, None, False, None)(pool.inputs)
    return x, np.array([str(lab) for lab in pool.labels]), kind.default_near


def accuracy(
    x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray, seed: int, pool: np.ndarray | None = None
) -> tuple[float, np.ndarray | None]:
    """Validation accuracy of the model fitted on (x, y), and its probabilities on ``pool`` (one fit)."""
    from tunesmith.eval.compare import linear_probe

    classes = np.unique(y)
    if len(classes) < 2:
        return float((vy == classes[0]).mean()), None
    test = vx if pool is None else np.concatenate([vx, pool])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        remap = {c: i for i, c in enumerate(classes)}
        probs, _ = linear_probe(x, np.array([remap[c] for c in y]), test, seed)
    acc = float((classes[probs[: len(vx)].argmax(1)] == vy).mean())
    return acc, (probs[len(vx) :] if pool is not None else None)


def curve(
    strategy: str,
    x: np.ndarray,
    y: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    k: int,
    target: float,
    seed: int,
    near: float,
) -> list[tuple[int, float]]:
    """Labels against validation accuracy until the target is reached (or the pool is spent)."""
    from tunesmith.labels.select import choose

    labelled = [p.index for p in choose(strategy, k, x, None, None, seed, near)]  # cold start
    points = []
    while True:
        rest = np.setdiff1d(np.arange(len(x)), labelled)
        acc, probs = accuracy(x[labelled], y[labelled], vx, vy, seed, x[rest] if strategy != "random" else None)
        points.append((len(labelled), acc))
        if acc >= target or not len(rest):
            return points
        classes = np.unique(y[labelled])
        if strategy == "random":
            probs = np.full((len(rest), len(classes)), 1 / len(classes))
        step = min(k, len(rest))
        names = [str(c) for c in classes] if probs is not None else None
        picks = choose(strategy, step, x[rest], probs, names, seed, near)
        labelled += [int(rest[p.index]) for p in picks]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="data/suite")
    ap.add_argument("--only", help="comma-separated set names")
    ap.add_argument("--seeds", type=int, default=3, help="random-pick seeds (the strategies are deterministic)")
    ap.add_argument("--share", type=float, default=0.95, help="the target: this share of the full-data accuracy")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    names = args.only.split(",") if args.only else SETS
    rows = []
    for name in names:
        t0 = time.time()
        x, y, near = embedded(Path(args.suite) / name, name, "train")
        vx, vy, _ = embedded(Path(args.suite) / name, name, "validation")
        full, _ = accuracy(x, y, vx, vy, 0)
        target = args.share * full
        k = max(10, len(x) // 40)
        need = {}
        for s in STRATEGIES:
            pts = curve(s, x, y, vx, vy, k, target, 0, near)
            need[s] = pts[-1][0] if pts[-1][1] >= target else None
        rand = []
        for seed in range(args.seeds):
            pts = curve("random", x, y, vx, vy, k, target, seed, near)
            rand.append(pts[-1][0] if pts[-1][1] >= target else len(x))
        r_mean = float(np.mean(rand))
        cells = [f"{need[s]}" if need[s] else "not reached" for s in STRATEGIES]
        ratios = [f"{need[s] / r_mean:.2f}" if need[s] else "-" for s in STRATEGIES]
        rows.append(
            f"| {name} | {len(x)} | {k} | {100 * full:.1f} | {100 * target:.1f} | "
            + " | ".join(cells)
            + f" | {r_mean:.0f} ({min(rand)}-{max(rand)}) | "
            + " | ".join(ratios)
            + f" | {time.time() - t0:.0f} |"
        )
        print(rows[-1], flush=True)
    print()
    head = " | ".join(STRATEGIES)
    print(f"| dataset | pool | k | full-data accuracy | target | {head} | random (seeds) | "
          + " | ".join(f"{s} / random" for s in STRATEGIES) + " | seconds |")  # fmt: skip
    print("|" + "---|" * (7 + 2 * len(STRATEGIES)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
