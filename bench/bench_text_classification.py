"""tunesmith vs the Hugging Face Trainer on MiniLM + Rotten Tomatoes, side by side in one run.

Each contender runs in its own fresh process (so peak RSS is its own) on the same data, and reports training
samples/s, model-FLOPs utilisation against the peak of a large matrix product measured here in the same run,
peak RSS, end-to-end wall time and validation accuracy. Two comparisons:

  same-job:  same epochs, batch size, learning rate, max length; the Trainer in fp32 (its CPU default) and in
             bf16 (its `bf16=True` option), tunesmith with its defaults for precision.
  time-to-model: tunesmith with only model, method and data named, against the Trainer run for 3 epochs.

    python bench/bench_text_classification.py              # both comparisons
    python bench/bench_text_classification.py --quick      # 1 epoch, smaller data: a fast sanity run
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


def peak_matmul_flops(dtype_name: str, threads: int, n: int = 2048, reps: int = 8) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def model_flops(model_dir: str, lengths: list[int], epochs: float) -> float:
    """Training FLOPs the model itself needs on the real (unpadded) tokens: 6 x non-embedding params per token
    for the dense layers, plus 12 x layers x hidden x length^2 per example for attention (forward + backward)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    h, layers, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    dense_params = layers * (4 * h * h + 2 * h * inter)
    per_epoch = sum(6 * dense_params * s + 12 * layers * h * s * s for s in lengths)
    return per_epoch * epochs


def child_trainer(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from tunesmith.data.readers import read_table

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    model_dir = args.model_dir
    tok = AutoTokenizer.from_pretrained(model_dir)
    train = read_table(args.train).rows
    val = read_table(args.validation).rows
    labels = sorted({r["label"] for r in train})
    index = {lab: i for i, lab in enumerate(labels)}

    def encode(rows: list[dict]) -> list[dict]:
        enc = tok([r["text"] for r in rows], truncation=True, max_length=args.max_length)
        return [
            {"input_ids": ids, "attention_mask": m, "labels": index[r["label"]]}
            for ids, m, r in zip(enc["input_ids"], enc["attention_mask"], rows)
        ]

    train_ds, val_ds = encode(train), encode(val)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        warmup_steps=0.1,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to=[],
        use_cpu=True,
        seed=42,
        bf16=args.bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, data_collator=DataCollatorWithPadding(tok))
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    model.eval()
    pred = trainer.predict(val_ds)
    acc = float((np.asarray(pred.predictions).argmax(-1) == np.asarray(pred.label_ids)).mean())
    lengths = [len(x["input_ids"]) for x in train_ds]
    return {
        "train_s": train_s,
        "samples": len(train_ds) * args.epochs,
        "wall_s": time.perf_counter() - t0,
        "accuracy": acc,
        "rss_mb": rss_mb(),
        "lengths": lengths,
        "epochs_run": args.epochs,
        "max_length": args.max_length,
        "precision": "bf16" if args.bf16 else "fp32",
    }


def child_tunesmith(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    import tunesmith

    cfg: dict = {
        "model": "minilm-l6",
        "method": "full",
        "output_dir": tempfile.mkdtemp(),
        "data": {"train": args.train, "validation": args.validation},
        "train": {"threads": args.threads},
    }
    if not args.defaults:
        cfg["train"].update(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            max_length=args.max_length,
            early_stopping_patience=0,
            freeze_embeddings=False,  # the Trainer trains every weight: the same job does too
        )
    run = tunesmith.finetune(cfg)
    fit = run.manifest["fit"]
    train_s = fit["step_seconds"]  # forward, backward, optimizer: the part the Trainer's train_runtime also has
    return {
        "train_s": train_s,
        "samples": round(fit["samples_per_s"] * train_s),
        "wall_s": time.perf_counter() - t0,
        "accuracy": run.metrics["accuracy"],
        "rss_mb": rss_mb(),
        "epochs_run": fit["epochs"],
        "max_length": run.manifest["max_length"],
        "precision": fit["precision"],
        "stopped": fit["stopped"],
        "lengths": None,
    }


def table(title: str, rows: dict[str, dict], reference: str) -> str:
    ref = rows[reference]
    lines = [
        f"\n## {title}",
        "",
        "| contender | precision | epochs | max len | train samples/s | MFU | peak RSS MB "
        "| wall s | accuracy | speed x | RSS x | wall x | acc diff |",
        "|---" * 13 + "|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['precision']} | {r['epochs_run']} | {r['max_length']} | {r['samples_per_s']:.1f} | "
            f"{r['mfu']:.0%} | {r['rss_mb']:.0f} | {r['wall_s']:.0f} | {r['accuracy']:.3f} | "
            f"{r['samples_per_s'] / ref['samples_per_s']:.2f} | {r['rss_mb'] / ref['rss_mb']:.2f} | "
            f"{r['wall_s'] / ref['wall_s']:.2f} | {100 * (r['accuracy'] - ref['accuracy']):+.1f} pt |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["trainer", "tunesmith"])
    p.add_argument("--train", default=str(ROOT / "data/rotten_tomatoes/train.csv"))
    p.add_argument("--validation", default=str(ROOT / "data/rotten_tomatoes/validation.csv"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--defaults", action="store_true", help="tunesmith child: name only model, method and data")
    p.add_argument("--model-dir")
    p.add_argument("--skip", nargs="*", default=[], choices=["same-job", "time-to-model"])
    p.add_argument("--out", default=str(ROOT / "bench/out/text_classification.json"))
    args = p.parse_args()
    if args.child:
        fn = child_trainer if args.child == "trainer" else child_tunesmith
        print(json.dumps(fn(args)))
        return

    from tunesmith.models.catalog import resolve

    model_dir = resolve("minilm-l6").path
    peaks = {d: peak_matmul_flops(d, args.threads) for d in ("float32", "bfloat16")}
    print(
        f"peak matmul on {args.threads} threads: fp32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
        f"bf16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s"
    )
    common = [
        "--train",
        args.train,
        "--validation",
        args.validation,
        "--threads",
        str(args.threads),
        "--model-dir",
        model_dir,
    ]
    results: dict = {"peaks_gflops": {k: v / 1e9 for k, v in peaks.items()}, "threads": args.threads}
    report = []
    job = [
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--max-length",
        str(args.max_length),
    ]

    def finish(rows: dict[str, dict], lengths: list[int]) -> None:
        for r in rows.values():
            flops = model_flops(model_dir, lengths, r["samples"] / len(lengths))
            r["samples_per_s"] = r["samples"] / r["train_s"]
            peak = peaks["bfloat16" if r["precision"] == "bf16" else "float32"]
            r["mfu"] = flops / r["train_s"] / peak
            r.pop("lengths", None)

    with tempfile.TemporaryDirectory() as cache:
        if "same-job" not in args.skip:
            rows = {"hf-trainer fp32": run_child(__file__, "trainer", [*common, *job], cache)}
            lengths = rows["hf-trainer fp32"]["lengths"]
            rows["hf-trainer bf16"] = run_child(__file__, "trainer", [*common, *job, "--bf16"], cache)
            rows["tunesmith"] = run_child(__file__, "tunesmith", [*common, *job], cache + "/same")
            finish(rows, lengths)
            results["same_job"] = rows
            report.append(
                table(
                    f"Same job: {args.epochs:g} epoch(s), batch {args.batch_size}, lr {args.lr:g}, "
                    f"max length {args.max_length}",
                    rows,
                    "hf-trainer fp32",
                )
            )
        if "time-to-model" not in args.skip:
            three = ["--epochs", "3", "--batch-size", "32", "--lr", "5e-5", "--max-length", "128"]
            rows = {"hf-trainer fp32, 3 epochs": run_child(__file__, "trainer", [*common, *three], cache)}
            lengths = rows["hf-trainer fp32, 3 epochs"]["lengths"]
            rows["hf-trainer bf16, 3 epochs"] = run_child(__file__, "trainer", [*common, *three, "--bf16"], cache)
            rows["tunesmith defaults"] = run_child(__file__, "tunesmith", [*common, "--defaults"], cache + "/defaults")
            finish(rows, lengths)
            results["time_to_model"] = rows
            report.append(
                table(
                    "Time to a good model: tunesmith defaults vs the Trainer for 3 epochs",
                    rows,
                    "hf-trainer fp32, 3 epochs",
                )
            )
    text = "\n".join(report)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    Path(args.out).with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
