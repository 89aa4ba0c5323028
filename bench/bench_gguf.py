"""GGUF export checked by llama.cpp itself (llama-cpp-python, built from its PyPI source by `make bench-gguf`):
a short LoRA run of SmolLM2-135M-Instruct on chatterbot chats is exported as f16 and q8_0 GGUF; llama.cpp loads
each file and answers the run's held-out prompts greedily from the same prompt tokens; the answers are compared
token for token with the merged model's in transformers, and the speeds side by side.

    python bench/bench_gguf.py                      # 160 conversations, 1 epoch, 16 held-out prompts
    python bench/bench_gguf.py --run runs/...       # an existing causal-lm run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(args: argparse.Namespace) -> Path:
    import tunesmith

    cfg = {
        "task": "causal-lm",
        "model": "smollm2-135m",
        "output_dir": str(ROOT / "runs" / "bench-gguf"),
        "data": {
            "train": str(ROOT / "data/chatterbot/train.jsonl"),
            "validation": str(ROOT / "data/chatterbot/validation.jsonl"),
            "max_train_examples": args.train_examples,
        },  # fmt: skip
        "train": {"epochs": 1},
        "eval": {"generate_examples": args.prompts},
    }
    return tunesmith.finetune(cfg).path


def llama_cpp_answers(path: Path, prompts: list[list[int]], stops: set[int], max_new: int) -> tuple[list, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=1024, n_threads=2, verbose=False, seed=0)
    out, start = [], time.perf_counter()
    for ids in prompts:
        llm.reset()
        answer = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if token in stops or len(answer) >= max_new:
                break
            answer.append(token)
        out.append(answer)
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="an existing causal-lm run (default: train a short one)")
    p.add_argument("--train-examples", type=int, default=160)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith import api
    from tunesmith.files import read_jsonl
    from tunesmith.tasks.causal_lm.decoding import generate_ids, stop_token_ids
    from tunesmith.tasks.causal_lm.rendering import prompt_ids

    torch.set_num_threads(2)
    run = Path(args.run) if args.run else train(args)
    prompts = [r["prompt"] for r in read_jsonl(run / "validation_generations.jsonl")[: args.prompts]]
    rows = []
    for quant in ("f16", "q8_0"):
        info = api.export_gguf(run, quant=quant)
        folder = run / "model"
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        ids = [prompt_ids(tok, q) for q in prompts]
        start = time.perf_counter()
        want = generate_ids(model, tok, ids, max_new_tokens=args.max_new_tokens, batch_size=1)
        hf_s = time.perf_counter() - start
        got, cpp_s = llama_cpp_answers(run / info["file"], ids, set(stop_token_ids(tok)), args.max_new_tokens)
        same = sum(a == b for a, b in zip(want, got))
        rows.append({"quant": quant, "size_mb": info["size_mb"], "prompts": len(ids), "identical_llama_cpp": same,
                     "identical_transformers_gguf": info["identical_greedy_outputs"],
                     "max_logprob_difference": info["max_logprob_difference"],
                     "transformers_s": round(hf_s, 2), "llama_cpp_s": round(cpp_s, 2),
                     "speed_ratio": round(hf_s / cpp_s, 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nrun: {run}")
    print(
        "| quant | size MB | held-out prompts | identical greedy answers, llama.cpp | identical, transformers' GGUF "
        "reader | transformers s | llama.cpp s | llama.cpp speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['quant']} | {r['size_mb']} | {r['prompts']} | {r['identical_llama_cpp']} | "
              f"{r['identical_transformers_gguf']} | {r['max_logprob_difference']} | {r['transformers_s']} | "
              f"{r['llama_cpp_s']} | "
              f"{r['speed_ratio']}x |")  # fmt: skip


if __name__ == "__main__":
    main()
