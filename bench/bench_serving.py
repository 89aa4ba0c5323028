"""Fast inference and serving, measured side by side in one run on a fine-tuned MiniLM (Rotten Tomatoes).

1. Batch prediction throughput on the same model and the same held-out texts: a Hugging Face ``pipeline`` (its
   default batch size 1, and batch size 32), tunesmith's torch path (length-sorted, token-budgeted batches) and the
   ONNX Runtime int8 export (kept only after its parity check); accuracy of each against the labels.
2. A bounded load test of ``tunesmith serve`` on loopback from a separate load-generator process: requests/s and
   p50/p99 latency at concurrency 1, 8 and 32 (one text per request), then an open-loop burst at twice the best
   sustained rate against a small queue (how fast the overflow is refused with 429/503), then recovery.

    python bench/bench_serving.py                 # trains a run first (about 2 minutes)
    python bench/bench_serving.py --run RUN_DIR   # reuse a finished MiniLM text-classification run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"


def train_run(out: Path) -> Path:
    import tunesmith

    cfg = {
        "task": "text-classification",
        "model": "minilm-l6",
        "method": "full",
        "output_dir": str(out),
        "data": {
            "train": str(ROOT / "data/rotten_tomatoes/train.csv"),
            "validation": str(ROOT / "data/rotten_tomatoes/validation.csv"),
            "max_train_examples": 2000,
        },
        "train": {"epochs": 2, "max_length": 64},
    }
    return tunesmith.finetune(cfg).path


def timed(fn, texts: list[str], repeats: int = 2) -> tuple[float, list]:
    fn(texts[:32])  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(texts)
        best = min(best, time.perf_counter() - t)
    return len(texts) / best, out


def throughput(run: Path, threads: int) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import tunesmith
    from tunesmith.pipeline.onnx_export import export_onnx

    torch.set_num_threads(threads)
    rows = [json.loads(x) for x in (run / "validation_predictions.jsonl").read_text().splitlines()]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    manifest = json.loads((run / "manifest.json").read_text())
    onnx = manifest.get("onnx") or export_onnx(run, quantize=True)
    model = AutoModelForSequenceClassification.from_pretrained(run / "model")
    tok = AutoTokenizer.from_pretrained(run / "model")
    results = {}
    for bs in (1, 32):
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu", batch_size=bs)
        kw = {"truncation": True, "max_length": manifest["max_length"]}
        rate, out = timed(lambda t, p=pipe, k=kw: p(t, **k), texts, repeats=1)
        results[f"pipeline_bs{bs}"] = {"texts_per_s": rate, "labels": [o["label"] for o in out]}
    for backend in ("torch", "onnx"):
        pred = tunesmith.load(run, backend=backend)
        rate, out = timed(lambda t, p=pred: p.predict(t), texts)
        results[f"tunesmith_{backend}"] = {"texts_per_s": rate, "labels": [o.label for o in out]}
    summary = {"examples": len(texts), "threads": threads, "onnx_parity": onnx}
    for name, r in results.items():
        summary[name] = {
            "texts_per_s": round(r["texts_per_s"], 1),
            "accuracy": round(float(np.mean([a == b for a, b in zip(r["labels"], truth)])), 4),
        }
    best_ref = max(summary["pipeline_bs1"]["texts_per_s"], summary["pipeline_bs32"]["texts_per_s"])
    summary["ratio_onnx_vs_pipeline_default"] = round(
        summary["tunesmith_onnx"]["texts_per_s"] / summary["pipeline_bs1"]["texts_per_s"], 2
    )
    summary["ratio_onnx_vs_best_pipeline"] = round(summary["tunesmith_onnx"]["texts_per_s"] / best_ref, 2)
    summary["accuracy_change_points_onnx_vs_pipeline"] = round(
        (summary["tunesmith_onnx"]["accuracy"] - summary["pipeline_bs1"]["accuracy"]) * 100, 2
    )
    return summary


# --- load generator (runs in its own process) ---------------------------------------------------------------
async def closed_loop(url: str, texts: list[str], concurrency: int, requests: int) -> dict:
    import httpx

    lat, codes = [], {}
    sent = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests:
            i = sent
            sent += 1
            t = time.perf_counter()
            r = await client.post(url, json={"inputs": [texts[i % len(texts)]]})
            lat.append(time.perf_counter() - t)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "status": codes,
        "errors": sum(v for k, v in codes.items() if k != 200),
    }


async def open_loop(url: str, texts: list[str], rate: float, seconds: float) -> dict:
    """Requests started at a fixed rate whatever the answers: the load a busy day brings."""
    import httpx

    by_code: dict[int, list[float]] = {}
    failures = 0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal failures
        t = time.perf_counter()
        try:
            r = await client.post(url, json={"inputs": [texts[i % len(texts)]]})
            by_code.setdefault(r.status_code, []).append(time.perf_counter() - t)
        except httpx.HTTPError:
            failures += 1

    limits = httpx.Limits(max_connections=1000)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, limits=limits) as c:
        tasks, n, t0 = [], int(rate * seconds), time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(c, i)))
        await asyncio.gather(*tasks)
    out = {"offered_rate": round(rate, 1), "requests": n, "connection_failures": failures}
    for code, lat in sorted(by_code.items()):
        lat.sort()
        out[str(code)] = {
            "count": len(lat),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        }
    return out


def load_child(port: int, texts_file: str) -> dict:
    texts = json.loads(Path(texts_file).read_text())
    url = f"http://127.0.0.1:{port}/v1/predict"
    levels = [closed_loop(url, texts, c, n) for c, n in ((1, 150), (8, 400), (32, 800))]
    out = {"levels": [asyncio.run(x) for x in levels]}
    best = max(lv["requests_per_s"] for lv in out["levels"])
    out["overload"] = asyncio.run(open_loop(url, texts, 2 * best, 5.0))
    time.sleep(1.0)
    out["recovery"] = asyncio.run(closed_loop(url, texts, 1, 50))
    return out


def serve_and_load(run: Path, threads: int) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TUNESMITH_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    server = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "serve", str(run), "--port", str(port), "--max-queue", "64"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import httpx

        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("the server did not start")
        rows = [json.loads(x) for x in (run / "validation_predictions.jsonl").read_text().splitlines()]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump([r["text"] for r in rows], fh)
        out = subprocess.run(
            [sys.executable, __file__, "--load-child", str(port), fh.name], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--load-child", nargs=2, metavar=("PORT", "TEXTS"))
    args = p.parse_args()
    if args.load_child:
        print(json.dumps(load_child(int(args.load_child[0]), args.load_child[1])))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    run = Path(args.run) if args.run else train_run(out_dir / "serving-runs")
    result = {"run": str(run), "throughput": throughput(run, args.threads)}
    print(json.dumps(result["throughput"], indent=2))
    result["load"] = serve_and_load(run, args.threads)
    print(json.dumps(result["load"], indent=2))
    (out_dir / "serving.json").write_text(json.dumps(result, indent=2))
    t = result["throughput"]
    print(
        f"\nONNX int8: {t['tunesmith_onnx']['texts_per_s']} texts/s = {t['ratio_onnx_vs_pipeline_default']}x the "
        f"pipeline at its default batch size, {t['ratio_onnx_vs_best_pipeline']}x its best; accuracy change "
        f"{t['accuracy_change_points_onnx_vs_pipeline']:+} points"
    )
    for lv in result["load"]["levels"]:
        print(
            f"concurrency {lv['concurrency']:>2}: {lv['requests_per_s']} req/s, p50 {lv['p50_ms']} ms, "
            f"p99 {lv['p99_ms']} ms, errors {lv['errors']}"
        )
    print("overload:", json.dumps(result["load"]["overload"]))
    print("recovery:", json.dumps(result["load"]["recovery"]))


if __name__ == "__main__":
    main()
