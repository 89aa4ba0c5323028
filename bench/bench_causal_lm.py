"""tunesmith vs the Hugging Face Trainer + PEFT: LoRA instruction tuning of SmolLM2-135M on chatterbot chats.

Same model, same conversations rendered with the same chat template and the same answer-only labels, same LoRA
settings (rank, alpha, dropout, target modules), epochs, batch size, learning rate, schedule and max length.
The Trainer pads each length-grouped batch (DataCollatorForSeq2Seq) and computes full-vocabulary logits; it runs
in fp32 (its CPU default) and with `bf16=True`. tunesmith runs with its defaults (packing, logits only at answer
positions, bf16 autocast where the CPU has native bf16). Each contender runs in its own fresh process, so peak
RSS (or peak CUDA memory on a GPU) is its own. Real training tokens/s counts only non-padding tokens.

    python bench/bench_causal_lm.py                   # 300 conversations, 1 epoch
    python bench/bench_causal_lm.py --train-examples 96 --quick
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
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return rss_mb()


def _read(path: str, n: int | None) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:n] if n else rows


def child_trainer(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from tunesmith.tasks.causal_lm.rendering import render

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model_dir)

    def encode(rows: list[dict]) -> list[dict]:
        out = []
        for r in rows:
            ids, mask = render(tok, {"messages": r["messages"]})
            ids, mask = ids[: args.max_length], mask[: args.max_length]
            if any(mask[1:]):
                labels = [t if m else -100 for t, m in zip(ids, mask)]
                out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
        return out

    train_ds = encode(_read(args.train, args.train_examples))
    val_ds = encode(_read(args.validation, args.validation_examples))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).to(device)
    model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM", r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=TARGETS
        ),
    )
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=16,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        warmup_steps=0.1,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to=[],
        use_cpu=device == "cpu",
        seed=42,
        bf16=args.bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, data_collator=collator)
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    # Validation loss per answer token, in fp32, as tunesmith reports it.
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(val_ds), 16):
            batch = collator(val_ds[s : s + 16])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            total += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100, reduction="sum"
                )
            )
            count += int((labels != -100).sum())
    tokens = sum(len(x["input_ids"]) for x in train_ds) * args.epochs
    return {
        "train_s": train_s,
        "tokens": tokens,
        "answer_tokens": sum(int(np.sum(np.asarray(x["labels"]) != -100)) for x in train_ds) * args.epochs,
        "val_loss": total / count,
        "peak_mb": _peak_mb(),
        "precision": "bf16" if args.bf16 else "fp32",
        "padding_share": None,
    }


def child_tunesmith(args: argparse.Namespace) -> dict:
    import tunesmith

    cfg = {
        "task": "causal-lm",
        "model": "smollm2-135m",
        "method": "lora",
        "output_dir": tempfile.mkdtemp(),
        "data": {
            "train": args.train,
            "validation": args.validation,
        },
        "train": {
            "threads": args.threads,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "max_length": args.max_length,
            "early_stopping_patience": 0,
        },
        "lora": {"r": args.r, "alpha": args.alpha, "dropout": args.dropout, "target_modules": TARGETS},
        "eval": {"generate_examples": 0},
    }
    run = tunesmith.finetune(cfg)
    fit = run.manifest["fit"]
    train_s = fit["step_seconds"]  # forward, backward, optimizer (and collate): what train_runtime also holds
    return {
        "train_s": train_s,
        "tokens": round(fit["tokens_per_s"] * train_s),
        "val_loss": run.metrics["loss"],
        "base_val_loss": run.metrics["base"]["loss"],
        "peak_mb": _peak_mb(),
        "precision": fit["precision"],
        "padding_share": fit["padding_share"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["trainer", "tunesmith"])
    p.add_argument("--train", default=str(ROOT / "data/chatterbot/train.jsonl"))
    p.add_argument("--validation", default=str(ROOT / "data/chatterbot/validation.jsonl"))
    p.add_argument("--train-examples", type=int, default=300)
    p.add_argument("--validation-examples", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.0, help="LoRA dropout for both (tunesmith's causal-lm default)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--quick", action="store_true", help="skip the Trainer's bf16 run")
    p.add_argument("--model-dir")
    p.add_argument("--out", default=str(ROOT / "bench/out/causal_lm.json"))
    args = p.parse_args()
    if args.child:
        fn = child_trainer if args.child == "trainer" else child_tunesmith
        print(json.dumps(fn(args)))
        return

    from tunesmith.models.catalog import resolve

    with tempfile.TemporaryDirectory() as cache:
        model_dir = resolve("smollm2-135m", cache).path  # converted once here, shared by every contender
        # Both contenders read exactly the same files: the first N conversations of each split.
        files = []
        for name, path, n in (
            ("train", args.train, args.train_examples),
            ("val", args.validation, args.validation_examples),
        ):
            sub = Path(cache) / f"{name}.jsonl"
            sub.write_text("".join(json.dumps(r) + "\n" for r in _read(path, n)), encoding="utf-8")
            files.append(str(sub))
        common = [
            "--train", files[0], "--validation", files[1],
            "--train-examples", "0", "--validation-examples", "0",
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--max-length", str(args.max_length), "--r", str(args.r), "--alpha", str(args.alpha),
            "--dropout", str(args.dropout),
            "--threads", str(args.threads), "--model-dir", model_dir,
        ]  # fmt: skip
        rows = {"trainer+peft fp32": run_child(__file__, "trainer", common, cache)}
        if not args.quick:
            rows["trainer+peft bf16"] = run_child(__file__, "trainer", [*common, "--bf16"], cache)
        rows["tunesmith"] = run_child(__file__, "tunesmith", common, cache)
    ref = rows["trainer+peft fp32"]
    lines = [
        f"\n## LoRA on SmolLM2-135M, {args.train_examples} chatterbot conversations, {args.epochs} epoch(s), "
        f"batch {args.batch_size}, lr {args.lr:g}, r {args.r}, dropout {args.dropout:g}, "
        f"max length {args.max_length}, {args.threads} threads",
        "",
        "| contender | precision | real tokens/s | peak MB | val loss | padding | tokens/s x | memory x |",
        "|---" * 8 + "|",
    ]
    for name, r in rows.items():
        r["tokens_per_s"] = r["tokens"] / r["train_s"]
        pad = f"{r['padding_share']:.1%}" if r["padding_share"] is not None else "-"
        lines.append(
            f"| {name} | {r['precision']} | {r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} | {r['val_loss']:.3f} | "
            f"{pad} | {r['tokens_per_s'] / ref['tokens_per_s']:.2f} | {r['peak_mb'] / ref['peak_mb']:.2f} |"
        )
    if "trainer+peft bf16" in rows:
        b = rows["trainer+peft bf16"]
        t = rows["tunesmith"]
        lines.append(
            f"\ntunesmith vs trainer+peft bf16: tokens/s x{t['tokens_per_s'] / b['tokens_per_s']:.2f}, "
            f"memory x{t['peak_mb'] / b['peak_mb']:.2f}"
        )
    lines.append(f"base model validation loss (before tuning): {rows['tunesmith']['base_val_loss']:.3f}")
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    Path(args.out).with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
