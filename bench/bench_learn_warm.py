"""The learning loop (`tunesmith learn`) cold against warm on a recipe-suite set, in one run: the same seed labels,
pool, validation data, strategy and k; cold rounds start from the pre-trained model, warm rounds from the previous
round's weights (`--warm`). Prints each round's labels, accuracy and seconds side by side, and the ratios.

    python bench/bench_learn_warm.py --set intents --method full
    python bench/bench_learn_warm.py --set intents --method lora --rounds 3 --k 40
    python bench/bench_learn_warm.py --set digits --method full   (images: the suite's array files)
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml


def seed_rows(labels: list[str], n_seed: int, seed: int) -> tuple[list[int], list[int]]:
    """n_seed row indices (stratified, every class twice where it can) and the rest, in a seeded order."""
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(labels))]
    by_class: dict[str, list[int]] = {}
    for i in order:
        by_class.setdefault(labels[i], []).append(i)
    chosen = [i for idx in by_class.values() for i in idx[:2]][:n_seed]
    chosen += [i for i in order if i not in set(chosen)][: max(0, n_seed - len(chosen))]
    taken = set(chosen)
    return chosen, [i for i in order if i not in taken]


def split_seed_images(train: Path, out: Path, n_seed: int, seed: int) -> tuple[Path, Path]:
    """An image set's array file split the same way: seed.npz and pool.npz (its labels are the oracle)."""
    arrays = np.load(train)
    images, labels = arrays["images"], arrays["labels"]
    chosen, rest = seed_rows([str(y) for y in labels], n_seed, seed)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "seed.npz", images=images[chosen], labels=labels[chosen])
    np.savez(out / "pool.npz", images=images[rest], labels=labels[rest])
    return out / "seed.npz", out / "pool.npz"


def split_seed(train: Path, out: Path, n_seed: int, seed: int) -> tuple[Path, Path]:
    """The suite's training split as n_seed labelled rows (stratified, every class twice where it can) and a pool
    holding the rest with their labels (the oracle)."""
    with train.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chosen, rest = seed_rows([r["label"] for r in rows], n_seed, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("seed.csv", chosen), ("pool.csv", rest)):
        with (out / name).open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["text", "label"])
            w.writeheader()
            w.writerows({"text": rows[i]["text"], "label": rows[i]["label"]} for i in part)
    return out / "seed.csv", out / "pool.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="data/suite")
    ap.add_argument("--set", default="intents")
    ap.add_argument("--method", default="full")
    ap.add_argument("--seed-labels", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, default=40)
    ap.add_argument("--strategy", default="diverse")
    args = ap.parse_args()
    from tunesmith import api
    from tunesmith.runtime import set_threads

    set_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    folder = Path(args.suite) / args.set
    images = (folder / "train.npz").is_file()
    if images:
        seed_file, pool = split_seed_images(folder / "train.npz", work / "data", args.seed_labels, 0)
        validation = folder / "validation.npz"
    else:
        seed_file, pool = split_seed(folder / "train.csv", work / "data", args.seed_labels, 0)
        validation = folder / "validation.csv"
    cfg = {
        "task": "image-classification" if images else "text-classification",
        "method": args.method,
        "data": {"train": str(seed_file), "validation": str(validation)},
        "output_dir": str(work / "runs"),
    }
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    results, walls = {}, {}
    for warm in (False, True):
        t0 = time.time()
        name = "warm" if warm else "cold"
        results[name] = api.learn(
            work / "cfg.yaml", pool, args.rounds, args.k, strategy=args.strategy, out=work / name, warm=warm
        )
        walls[name] = time.time() - t0
    cold, warm_r = results["cold"].rounds, results["warm"].rounds
    print(f"\n{args.set}, method {args.method}, {args.strategy} picks of {args.k}, seed labels {args.seed_labels}")
    print("| round | labels | cold accuracy (95% CI) | warm accuracy (95% CI) | cold s | warm s | warm started from |")
    print("|---|---|---|---|---|---|---|")

    def shown(r: object) -> str:
        lo, hi = r.accuracy_ci  # type: ignore[attr-defined]
        return f"{100 * r.accuracy:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"  # type: ignore[attr-defined]

    for c, w in zip(cold, warm_r):
        print(
            f"| {c.round} | {c.labels} | {shown(c)} | {shown(w)} | {c.seconds:.0f} | {w.seconds:.0f} "
            f"| {w.started_from} |"
        )
    gain = 100 * (warm_r[-1].accuracy - cold[-1].accuracy)
    print(
        f"\nlast round: warm - cold = {gain:+.1f} points; wall time warm / cold = {walls['warm'] / walls['cold']:.2f} "
        f"({walls['warm']:.0f} s / {walls['cold']:.0f} s); runs in {work}"
    )


if __name__ == "__main__":
    main()
