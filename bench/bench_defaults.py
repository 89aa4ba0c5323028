"""Defaults on the whole recipe suite: tunesmith given only the model and the data, against the general model
(the run's own linear probe on the frozen model, or the base chat model) and the Hugging Face Trainer (+PEFT for
chat) with its documented defaults (3 epochs, batch 8, learning rate 5e-5, linear decay), in one run.

    make suite && python bench/bench_defaults.py                 # every suite dataset (about 40 minutes)
    python bench/bench_defaults.py --only intents,python-docs     # some of them
    BENCH_TRAINER_SEED=1 python bench/bench_defaults.py --only python-docs   # the Trainer at another seed

Each contender runs in a fresh child process (its peak RSS is its own); wall time is end to end in that process,
imports included. The table goes to stdout and bench/out/defaults.json; docs/defaults.md keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from children import rss_mb, run_child  # noqa: E402
from tunesmith.examples import SUITE  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
TRAINER = {"epochs": 3, "batch_size": 8, "lr": 5e-5}  # TrainingArguments' defaults
# TrainingArguments' default, also set before the model is built so its new weights repeat; BENCH_TRAINER_SEED
# varies it (the Trainer's spread over seeds)
TRAINER_SEED = int(os.environ.get("BENCH_TRAINER_SEED", "42"))
TEXT_LENGTH = 128  # the Trainer's recipe tokenizes to 128 tokens (the comparison)
LORA_LR = 2e-4  # PEFT's LoRA examples; the Trainer's 5e-5 barely moves adapters


def _files(root: Path, name: str) -> tuple[str, str]:
    ext = {"text": "csv", "images": "npz", "chat": "jsonl"}[SUITE[name][0]]
    return str(root / name / f"train.{ext}"), str(root / name / f"validation.{ext}")


# --- children --------------------------------------------------------------------------------------------------------
def child_tunesmith(args: argparse.Namespace) -> dict:
    """tunesmith with defaults only: the data and the threads, nothing else."""
    t0 = time.perf_counter()
    import tunesmith

    kind = SUITE[args.dataset][0]
    task = {"text": "text-classification", "images": "image-classification", "chat": "causal-lm"}[kind]
    cfg = {
        "task": task,
        "output_dir": tempfile.mkdtemp(),
        "data": {"train": args.train, "validation": args.validation},
        "train": {"threads": args.threads},
    }
    if args.train.endswith(".csv"):
        with open(args.train, encoding="utf-8") as fh:  # a fact about the data, as its columns are: passages by page
            if "page" in fh.readline().strip().split(","):
                cfg["data"]["group_column"] = "page"
    run = tunesmith.finetune(cfg, overrides=args.set)
    m, fit = run.manifest["metrics"], run.manifest["fit"]
    out = {
        "wall_s": time.perf_counter() - t0,
        "rss_mb": rss_mb(),
        "epochs": fit["epochs"],
        "steps": fit["steps"],
        "stopped": fit["stopped"],
        "kept": run.manifest["kept"]["model"],
        "defaults": {d["key"]: d["value"] for d in run.manifest["defaults"]},
        "max_length": run.manifest["max_length"],
    }
    if kind == "chat":
        base, tuned = m["base"], m["tuned"]
        diff = m["tuned_minus_base"]["token_f1"]
        out |= {"token_f1": tuned["token_f1"], "rouge_l": tuned["rouge_l"], "loss": tuned["loss"]}
        out |= {"general_token_f1": base["token_f1"], "general_rouge_l": base["rouge_l"], "general_loss": base["loss"]}
        out |= {"ci": [diff["ci_low"], diff["ci_high"]], "n": m["n_generated"]}
    else:
        general = m["verdict"]["against"]
        diff = m["tuned_minus"][general]["accuracy"]
        out |= {"accuracy": m["accuracy"], "general_accuracy": m["baselines"][general]["accuracy"]}
        out |= {"ci": [diff["ci_low"], diff["ci_high"]], "n": m["n"], "verdict": m["verdict"]["status"]}
    return out


def child_trainer_text(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from tunesmith.data.readers import read_table
    from tunesmith.models.catalog import resolve

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    model_dir = resolve("minilm-l6").path
    tok = AutoTokenizer.from_pretrained(model_dir)
    train, val = read_table(args.train).rows, read_table(args.validation).rows
    labels = sorted({r["label"] for r in train})
    index = {lab: i for i, lab in enumerate(labels)}

    def encode(rows: list[dict]) -> list[dict]:
        enc = tok([r["text"] for r in rows], truncation=True, max_length=TEXT_LENGTH)
        pairs = zip(enc["input_ids"], enc["attention_mask"], rows)
        return [{"input_ids": i, "attention_mask": a, "labels": index[r["label"]]} for i, a, r in pairs]

    set_seed(TRAINER_SEED)  # the new head's initialisation too: the Trainer seeds only from its own start on
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    trainer = Trainer(
        model=model, args=_trainer_args(), train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok)
    )
    trainer.train()
    pred = trainer.predict(encode(val))
    acc = float((np.asarray(pred.predictions).argmax(-1) == np.asarray(pred.label_ids)).mean())
    return {"wall_s": time.perf_counter() - t0, "rss_mb": rss_mb(), "accuracy": acc}


def _trainer_args(**extra: object) -> object:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        num_train_epochs=TRAINER["epochs"],
        per_device_train_batch_size=TRAINER["batch_size"],
        learning_rate=extra.pop("learning_rate", TRAINER["lr"]),
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=TRAINER_SEED,
        disable_tqdm=True,
        **extra,
    )


def child_trainer_images(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from transformers import Trainer, set_seed
    from transformers.utils import logging as hf_logging

    from tunesmith.models.catalog import resolve
    from tunesmith.tasks.image_classification.vision import (
        EFFICIENTNET,
        EFFICIENTNET_PREPROCESS,
        build_classifier,
        resize_square,
    )

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tr, va = np.load(args.train), np.load(args.validation)
    labels = sorted(set(tr["labels"].tolist()))
    index = {lab: i for i, lab in enumerate(labels)}
    size = EFFICIENTNET_PREPROCESS.size

    def pixels(images: np.ndarray) -> torch.Tensor:
        rgb = np.repeat(images[..., None], 3, axis=-1) if images.ndim == 3 else images
        x = torch.from_numpy(np.stack([resize_square(im, size) for im in rgb])).float()
        return EFFICIENTNET_PREPROCESS.normalise(x)

    class WithLoss(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
            logits = self.net(pixel_values)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
            return out

    x_tr, x_va = pixels(tr["images"]), pixels(va["images"])
    y_tr = [index[v] for v in tr["labels"].tolist()]
    y_va = np.array([index[v] for v in va["labels"].tolist()])
    train_ds = [{"pixel_values": x, "labels": y} for x, y in zip(x_tr, y_tr)]
    set_seed(TRAINER_SEED)  # the new head's initialisation too
    model = WithLoss(build_classifier(resolve("efficientnet-lite0").path, EFFICIENTNET, labels))
    Trainer(model=model, args=_trainer_args(), train_dataset=train_ds).train()
    model.eval()
    with torch.inference_mode():
        pred = np.concatenate([model(x_va[s : s + 64])["logits"].argmax(-1).numpy() for s in range(0, len(x_va), 64)])
    return {"wall_s": time.perf_counter() - t0, "rss_mb": rss_mb(), "accuracy": float((pred == y_va).mean())}


def child_trainer_chat(args: argparse.Namespace) -> dict:
    """Trainer + PEFT LoRA with their defaults (LoraConfig's r 8, alpha 8 on q_proj/v_proj), scored on the same
    golden prompts tunesmith answers, with tunesmith's greedy decoding and token F1."""
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, set_seed
    from transformers.utils import logging as hf_logging

    from tunesmith.data.conversations import read_split
    from tunesmith.data.validate import DataReport
    from tunesmith.eval.text_metrics import token_f1
    from tunesmith.models.catalog import resolve
    from tunesmith.tasks.causal_lm.decoding import generate_texts
    from tunesmith.tasks.causal_lm.rendering import prompt_ids, render
    from tunesmith.tasks.causal_lm.task import _golden

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    folder = resolve("smollm2-135m").path
    tok = AutoTokenizer.from_pretrained(folder)
    train = [json.loads(line) for line in Path(args.train).read_text(encoding="utf-8").splitlines() if line.strip()]

    def encode(row: dict) -> dict:
        ids, mask = render(tok, {"messages": row["messages"]})
        return {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "labels": [t if m else -100 for t, m in zip(ids, mask)],
        }

    set_seed(TRAINER_SEED)  # the adapters' initialisation too
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM"))
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    train_ds = [encode(r) for r in train]
    Trainer(
        model=model, args=_trainer_args(learning_rate=LORA_LR), train_dataset=train_ds, data_collator=collator
    ).train()
    val, _, _ = read_split(args.validation, "auto", DataReport())
    golden = _golden(val, 32, 42)
    refs = [r for _, r, _ in golden]
    budget = min(128, max(16, 2 * max(len(tok(r, add_special_tokens=False)["input_ids"]) for r in refs)))
    model.eval()
    outs = generate_texts(model, tok, [prompt_ids(tok, p) for p, _, _ in golden], max_new_tokens=budget, batch_size=16)
    f1 = float(np.mean([token_f1(o, r) for o, r in zip(outs, refs)]))
    return {"wall_s": time.perf_counter() - t0, "rss_mb": rss_mb(), "token_f1": f1}


CHILDREN = {
    "tunesmith": child_tunesmith,
    "trainer-text": child_trainer_text,
    "trainer-images": child_trainer_images,
    "trainer-chat": child_trainer_chat,
}


# --- the table -------------------------------------------------------------------------------------------------------
def row(name: str, kind: str, ts: dict, hf: dict) -> str:
    metric = "token_f1" if kind == "chat" else "accuracy"
    lo, hi = ts["ci"]
    gen = ts[f"general_{metric}"]
    return (
        f"| {name} | {kind} | {100 * gen:.1f} | {100 * hf[metric]:.1f} | **{100 * ts[metric]:.1f}** | "
        f"{100 * (ts[metric] - gen):+.1f} ({100 * lo:+.1f} .. {100 * hi:+.1f}) | {ts['kept']} | "
        f"{hf['wall_s']:.0f} | {ts['wall_s']:.0f} | **{ts['wall_s'] / hf['wall_s']:.2f}** | "
        f"{hf['rss_mb']:.0f} | {ts['rss_mb']:.0f} | {ts['epochs']:g} ({ts['stopped'] or 'all'}) |"
    )


HEADER = (
    "| dataset | kind | general % | Trainer % | tunesmith % | tunesmith - general (CI) | kept | Trainer s | "
    "tunesmith s | wall x | Trainer MB | tunesmith MB | epochs run |\n" + "|---" * 13 + "|"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--dataset")
    p.add_argument("--train")
    p.add_argument("--validation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--suite", default="data/suite", help="where `python -m tunesmith.examples suite` wrote the data")
    p.add_argument("--only", default="", help="comma-separated suite datasets (default: all)")
    p.add_argument("--skip-trainer", action="store_true", help="tunesmith only (to iterate on defaults)")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE override for tunesmith (experiments)")
    p.add_argument("--out", default="bench/out/defaults.json")
    a = p.parse_args()
    if a.child:
        print(json.dumps(CHILDREN[a.child](a), default=float))
        return
    names = [n for n in a.only.split(",") if n] or list(SUITE)
    results = {}
    print(HEADER, flush=True)
    for name in names:
        kind = SUITE[name][0]
        train, val = _files(Path(a.suite), name)
        common = ["--dataset", name, "--train", train, "--validation", val, "--threads", str(a.threads)]
        common += [x for kv in a.set for x in ("--set", kv)]
        with tempfile.TemporaryDirectory() as cache:
            ts = run_child(SCRIPT, "tunesmith", common, cache)
        hf = {"wall_s": float("nan"), "rss_mb": float("nan"), "accuracy": float("nan"), "token_f1": float("nan")}
        if not a.skip_trainer:
            with tempfile.TemporaryDirectory() as cache:
                hf = run_child(SCRIPT, f"trainer-{kind}", common, cache)
        results[name] = {"kind": kind, "tunesmith": ts, "trainer": hf}
        print(row(name, kind, ts, hf), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
