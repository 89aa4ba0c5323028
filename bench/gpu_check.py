"""GPU check: tunesmith's training loop against the Hugging Face Trainer (+PEFT) on the same random-initialised
models of real sizes, in bf16: tokens per second and peak GPU memory, each contender in its own process.

    PYTHONPATH=src python bench/gpu_check.py            # a lent GPU machine: about 5 minutes
    PYTHONPATH=src python bench/gpu_check.py --smoke    # tiny shapes on CPU: checks the script itself

Needs only torch, transformers, peft and accelerate: no model files travel (the weights are random, which does
not change the speed or the memory). Cases: a 1B Llama (Llama-3.2-1B's shape) with LoRA r 16 on every linear
layer of the blocks, sequences of 512 tokens, batch 8; BERT-base, every weight, 128 tokens, batch 32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "llama-1b-lora": {
        "kind": "causal",
        "config": {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "max_position_embeddings": 2048,
            "tie_word_embeddings": True,
        },
        "length": 512,
        "batch": 8,
        "steps": 24,
    },
    "bert-base-full": {
        "kind": "classify",
        "config": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
        "length": 128,
        "batch": 32,
        "steps": 40,
    },
}
SMOKE = {
    "llama-1b-lora": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "vocab_size": 512},
    "bert-base-full": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}  # fmt: skip
WARMUP = 4  # steps not timed (allocator and kernel selection)


def build(case: dict, smoke: bool, name: str):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    shape = {**case["config"], **(SMOKE[name] if smoke else {})}
    if case["kind"] == "causal":
        model = LlamaForCausalLM(LlamaConfig(**shape))
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules=targets))
    else:
        model = BertForSequenceClassification(BertConfig(**shape, num_labels=4))
    return model, shape.get("vocab_size", 30522)


def items(case: dict, vocab: int, n: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        ids = rng.integers(5, vocab, case["length"]).astype(np.int32)
        if case["kind"] == "causal":
            out.append({"input_ids": ids, "loss_mask": np.ones(len(ids), dtype=bool), "line": 0})
        else:
            out.append({"input_ids": ids, "labels": int(rng.integers(0, 4))})
    return out


def child_tunesmith(name: str, smoke: bool) -> dict:
    import torch

    from tunesmith import config
    from tunesmith.train.loop import fit

    case = CASES[name]
    model, vocab = build(case, smoke, name)
    steps = 6 if smoke else case["steps"]
    data = items(case, vocab, case["batch"] * steps)
    if case["kind"] == "causal":
        from tunesmith.tasks.causal_lm.loss import make_collate, token_loss

        collate, loss_fn = make_collate(0, case["length"], True), token_loss
    else:
        from tunesmith.tasks.text_classification.encoding import make_collate as text_collate

        collate = text_collate(0)

        def loss_fn(m, b):
            logits = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            return torch.nn.functional.cross_entropy(logits.float(), b["labels"])

    train = {"epochs": 1, "batch_size": case["batch"], "learning_rate": 1e-4, "gradient_accumulation": 1}
    train |= {"precision": "bf16" if torch.cuda.is_available() else "fp32", "group_by_length": False}
    cfg = config.from_dict({"data": {"train": "unused"}, "train": train})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []

    def timed_loss(m, b):
        times.append(time.perf_counter())
        return loss_fn(m, b)

    fit(model, data, collate=collate, loss_fn=timed_loss, cfg=cfg.train)
    return _figures(times, case, steps)


def child_trainer(name: str, smoke: bool) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    case = CASES[name]
    model, vocab = build(case, smoke, name)
    steps = 6 if smoke else case["steps"]
    rows = []
    for it in items(case, vocab, case["batch"] * steps):
        ids = it["input_ids"].tolist()
        row = {"input_ids": ids, "attention_mask": [1] * len(ids)}
        row["labels"] = ids if case["kind"] == "causal" else it["labels"]
        rows.append(row)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            times.append(time.perf_counter())

    gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir="/tmp/gpu-check-trainer",
        per_device_train_batch_size=case["batch"],
        num_train_epochs=1,
        learning_rate=1e-4,
        bf16=gpu,
        use_cpu=not gpu,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[Clock()]).train()
    return _figures(times, case, steps)


def _figures(times: list[float], case: dict, steps: int) -> dict:
    import torch

    timed = times[WARMUP:] if len(times) > WARMUP + 1 else times
    per_step = (timed[-1] - timed[0]) / max(1, len(timed) - 1)
    gpu = torch.cuda.is_available()
    return {
        "tokens_per_s": case["batch"] * case["length"] / per_step,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if gpu else None,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "steps": steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["tunesmith", "trainer"])
    p.add_argument("--case", choices=sorted(CASES))
    p.add_argument("--smoke", action="store_true", help="tiny shapes on CPU: check the script, not the GPU")
    p.add_argument("--out", default="bench/out/gpu_check.json")
    a = p.parse_args()
    if a.child:
        fn = child_tunesmith if a.child == "tunesmith" else child_trainer
        print(json.dumps(fn(a.case, a.smoke)))
        return
    results = {}
    print("| case | contender | tokens/s | peak GiB | tokens/s x | memory x |\n|---|---|---|---|---|---|", flush=True)
    for case in CASES:
        got = {}
        for who in ("trainer", "tunesmith"):
            cmd = [sys.executable, __file__, "--child", who, "--case", case] + (["--smoke"] if a.smoke else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{case} / {who} failed:\n{out.stderr[-3000:]}")
            got[who] = json.loads(out.stdout.strip().splitlines()[-1])
        ref = got["trainer"]
        for who, r in got.items():
            mem = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
            mem_x = f"{r['peak_gib'] / ref['peak_gib']:.2f}" if r["peak_gib"] and ref["peak_gib"] else "-"
            speed_x = r["tokens_per_s"] / ref["tokens_per_s"]
            print(f"| {case} | {who} | {r['tokens_per_s']:,.0f} | {mem} | {speed_x:.2f} | {mem_x} |", flush=True)
        results[case] = got
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
