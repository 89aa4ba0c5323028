"""tunesmith vs a plain PyTorch training loop on EfficientNet-Lite0 + Fashion-MNIST, side by side in one run.

The same images (the first N of the training set, written once as PNG files, as a user's folder of images
would be), the same model and head, 224x224 input with the model's own normalisation, batch size, epochs,
AdamW learning rate and flip augmentation. The plain loop is what the PyTorch tutorials teach: a Dataset that
opens, decodes, resizes and normalises each image with PIL in __getitem__, a standard DataLoader (shuffle,
its default num_workers=0, and num_workers=2 as a second row), forward, loss, backward, step, in fp32.
tunesmith decodes and resizes each image once (cached), augments on tensors, and uses its defaults
(bf16 autocast where the CPU has native bf16). Each contender runs in a fresh process; images/s counts
training images over the training time alone; peak RSS is the process's own.

    python bench/bench_images.py               # 1,000 images, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from children import rss_mb, run_child

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_pngs(out: Path, n: int) -> Path:
    from PIL import Image

    from tunesmith.data.images import open_idx

    images = open_idx(FASHION / "train-images-idx3-ubyte.gz")[:n]
    labels = open_idx(FASHION / "train-labels-idx1-ubyte.gz")[:n]
    for i, (img, y) in enumerate(zip(images, labels)):
        (out / str(int(y))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / str(int(y)) / f"{i}.png")
    return out


def child_plain(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from tunesmith.models.catalog import resolve
    from tunesmith.tasks.image_classification.vision import EFFICIENTNET, build_classifier

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    files = sorted(Path(args.images).rglob("*.png"))
    classes = sorted({f.parent.name for f in files})

    class Folder(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int):
            img = Image.open(files[i]).convert("RGB").resize((224, 224), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1).copy())
            if torch.rand(1) < 0.5:
                x = x.flip(-1)
            return (x - 127.0) / 128.0, classes.index(files[i].parent.name)

    loader = torch.utils.data.DataLoader(Folder(), batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    model = build_classifier(resolve("efficientnet-lite0").path, EFFICIENTNET, classes)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    t = time.perf_counter()
    seen = 0
    for _ in range(args.epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            seen += len(y)
    train_s = time.perf_counter() - t
    return {"train_s": train_s, "images": seen, "rss_mb": rss_mb(), "precision": "fp32"}


def child_tunesmith(args: argparse.Namespace) -> dict:
    import tunesmith

    cfg = {
        "task": "image-classification",
        "model": "efficientnet-lite0",
        "method": "full",
        "output_dir": tempfile.mkdtemp(),
        "data": {"train": args.images, "validation_split": 0.1},
        "train": {
            "threads": args.threads,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "early_stopping_patience": 0,
            "max_length": 224,  # the same job as the plain loop: 224 px (small pictures would default to 160)
        },
        "augment": {"crop_scale": 1.0, "color_jitter": 0.0},
        "eval": {"probe": False},
    }
    t = time.perf_counter()
    run = tunesmith.finetune(cfg)
    fit = run.manifest["fit"]
    return {
        "train_s": fit["step_seconds"],
        "images": round(fit["samples_per_s"] * fit["step_seconds"]),
        "rss_mb": rss_mb(),
        "precision": fit["precision"],
        "decode_s": run.manifest["timings_s"]["read_and_check"] + run.manifest["timings_s"]["tokenize"],
        "wall_s": time.perf_counter() - t,
        "accuracy": run.metrics["accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["plain", "tunesmith"])
    p.add_argument("--images")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", default=str(ROOT / "bench/out/images.json"))
    args = p.parse_args()
    if args.child:
        fn = child_plain if args.child == "plain" else child_tunesmith
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        images = write_pngs(Path(tmp) / "images", args.n)
        common = ["--images", str(images), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                  "--lr", str(args.lr), "--threads", str(args.threads)]  # fmt: skip
        rows = {
            "plain loop, DataLoader workers=0": run_child(__file__, "plain", [*common, "--workers", "0"], tmp + "/c"),
            "plain loop, DataLoader workers=2": run_child(__file__, "plain", [*common, "--workers", "2"], tmp + "/c"),
            "tunesmith": run_child(__file__, "tunesmith", common, tmp + "/c"),
        }
    ref = rows["plain loop, DataLoader workers=0"]
    lines = [
        f"\n## EfficientNet-Lite0 on {args.n} Fashion-MNIST images (224x224), {args.epochs} epoch(s), "
        f"batch {args.batch_size}, {args.threads} threads",
        "",
        "| contender | precision | train images/s | peak RSS MB | images/s x | RSS x |",
        "|---" * 6 + "|",
    ]
    for name, r in rows.items():
        r["images_per_s"] = r["images"] / r["train_s"]
        lines.append(
            f"| {name} | {r['precision']} | {r['images_per_s']:.1f} | {r['rss_mb']:.0f} | "
            f"{r['images_per_s'] / ref['images_per_s']:.2f} | {r['rss_mb'] / ref['rss_mb']:.2f} |"
        )
    t = rows["tunesmith"]
    lines.append(
        f"\ntunesmith decoded and resized the images once in {t['decode_s']:.1f} s (its training time excludes "
        f"that; counted in, {t['images'] / (t['train_s'] + t['decode_s']):.1f} images/s). It trains on 90% of "
        "the images (10% held out for its evaluation); images/s is per image trained either way."
    )
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    Path(args.out).with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
