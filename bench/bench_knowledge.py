"""Knowledge bases on the Python documentation (Debian python3.11-doc), in one run:

1. the index: build time, an unchanged rebuild, query latency p50/p99 (encoder + search, and search alone) at the
   example's size and at ten times it (the vectors repeated with noise), NumPy's exact search beside faiss's flat
   index when faiss is installed;
2. retrieval: the general and the tuned encoder (task: embedding on the FAQ's training questions and answers)
   finding each held-out FAQ question's answer among the answers and every chunk of the other pages;
3. answering: SmolLM2 without and with retrieval, LoRA-tuned without retrieval, and tuned with retrieval (RAFT),
   on the same held-out FAQ questions: token F1 / ROUGE-L against the FAQ's answers, support by the documents,
   paired intervals.

    python bench/bench_knowledge.py                 # everything (about an hour on 2 cores)
    python bench/bench_knowledge.py --only index retrieval
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path("/usr/share/doc/python3.11/html/_sources")
OTHER = ["tutorial", "howto", "reference", "using"]  # the knowledge base's pages besides the FAQ
DATA = ROOT / "data" / "python-faq-rag"


def percentiles(seconds: list[float]) -> str:
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def ensure_data() -> None:
    if not (DATA / "pairs_train.jsonl").is_file():
        from tunesmith.examples import main

        main(["python-faq-rag", "--out", str(DATA), "--train", "120", "--validation", "50"])


def index(out: dict, fresh: bool) -> None:
    from tunesmith import api
    from tunesmith.knowledge.base import KnowledgeBase
    from tunesmith.knowledge.index import Index
    from tunesmith.knowledge.raft import question_of

    if fresh:
        shutil.rmtree(Path(os.environ["TUNESMITH_KNOWLEDGE"]) / "python-docs", ignore_errors=True)
    paths = [str(DOCS / "faq"), *(str(DOCS / d) for d in OTHER)]
    start = time.perf_counter()
    built = api.kb_build(paths, "python-docs")
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    again = api.kb_build(paths, "python-docs")
    rebuild_s = time.perf_counter() - start
    kb = KnowledgeBase.named("python-docs")
    rows = [json.loads(x) for x in (DATA / "validation.jsonl").read_text().splitlines()]
    questions = [question_of(r) for r in rows] * 4
    enc = kb.encoder()
    ids, vecs = kb.index.matrix()
    queries = enc.encode(questions)
    full, search_only = [], []
    for q in questions:
        t0 = time.perf_counter()
        v = enc.encode([q])
        t1 = time.perf_counter()
        kb.index.search(v, 5)
        t2 = time.perf_counter()
        full.append(t2 - t0)
        search_only.append(t2 - t1)
    result = {
        "files": len(built.files["added"]) + len(built.files["unchanged"]), "chunks": built.chunks,
        "build_s": build_s, "chunks_embedded": built.chunks_embedded,
        "chunks_per_s": built.chunks_embedded / build_s if built.chunks_embedded else None,
        "rebuild_unchanged_s": rebuild_s, "rebuild_embedded": again.chunks_embedded,
        "query_with_encoder": percentiles(full), "index_search_1x": percentiles(search_only),
    }  # fmt: skip
    # Ten times the chunks: the same vectors repeated with a little noise, stored through the same index code.
    rng = np.random.default_rng(0)
    big = np.concatenate([vecs + rng.normal(0, 0.01, vecs.shape).astype(np.float32) for _ in range(10)])
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    folder = Path(os.environ["TUNESMITH_KNOWLEDGE"]) / "tenfold"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    chunks = kb.index.chunks()
    from tunesmith.knowledge.chunking import Chunk

    fake = [Chunk(h.source, tuple(h.heading.split(" > ")), h.text, h.first_line, h.last_line) for h in chunks] * 10
    tenfold = Index(folder / "index.sqlite")
    start = time.perf_counter()
    tenfold.replace([], [], fake, big)
    result["store_10x_s"] = time.perf_counter() - start
    tenfold.matrix()
    times = []
    for v in queries:
        t0 = time.perf_counter()
        tenfold.search(v[None], 5)
        times.append(time.perf_counter() - t0)
    result["chunks_10x"] = len(big)
    result["index_search_10x"] = percentiles(times)
    # The vector search alone (what faiss replaces): NumPy's exact top 5 against faiss's flat index.
    try:
        import faiss
    except ImportError:
        faiss = None
        result["faiss"] = "not installed (pip install faiss-cpu)"
    for name, matrix in (("1x", vecs), ("10x", big)):
        t_np = []
        for v in queries:
            t0 = time.perf_counter()
            scores = matrix @ v
            top = np.argpartition(-scores, 4)[:5]
            top[np.argsort(-scores[top])]
            t_np.append(time.perf_counter() - t0)
        result[f"numpy_topk_{name}"] = percentiles(t_np)
        if faiss is not None:
            flat = faiss.IndexFlatIP(matrix.shape[1])
            flat.add(matrix)
            t_f = []
            for v in queries:
                t0 = time.perf_counter()
                flat.search(v[None], 5)
                t_f.append(time.perf_counter() - t0)
            result[f"faiss_flat_{name}"] = percentiles(t_f)
            result[f"numpy_over_faiss_p50_{name}"] = round(float(np.median(t_np) / np.median(t_f)), 2)
    result["answer_chunk_in_top_k"] = coverage(kb)
    out["index"] = result
    print(json.dumps(result, indent=2), flush=True)


def coverage(kb: object) -> dict[str, object]:
    """How often a FAQ question's retrieved top k holds the chunk with its answer (retrieval.k's measurement)."""
    from tunesmith.knowledge.raft import answer_of, find_oracles, question_of

    rows = [json.loads(x) for f in ("train", "validation") for x in (DATA / f"{f}.jsonl").read_text().splitlines()]
    oracles = find_oracles(kb, [answer_of(r) for r in rows], 0.5)
    hits = kb.search([question_of(r) for r in rows], 5)
    found = [(o, h) for o, h in zip(oracles, hits) if o is not None]
    shares = {k: round(sum(o.id in [x.id for x in h[:k]] for o, h in found) / len(found), 3) for k in range(1, 6)}
    return {"answers_in_a_chunk": f"{len(found)} of {len(rows)}", **{f"k={k}": v for k, v in shares.items()}}


def retrieval(out: dict, runs: Path, with_kb_pairs: bool) -> None:
    """The FAQ's held-out questions must find their answers among every answer and the other pages' chunks.
    ``with_kb_pairs``: the training pairs also hold the other pages' (section title, first chunk) pairs."""
    import tunesmith
    from tunesmith import api

    api.kb_build([str(DOCS / d) for d in OTHER], "python-docs-nofaq")
    train = DATA / "pairs_train.jsonl"
    if with_kb_pairs:
        extra = runs.parent / "kb_pairs.jsonl"
        n = api.kb_pairs("python-docs-nofaq", extra)
        train = runs.parent / "pairs_train_plus_kb.jsonl"
        train.write_text((DATA / "pairs_train.jsonl").read_text() + extra.read_text())
        print(f"training pairs: the FAQ's and {n} from the knowledge base's section titles", flush=True)
    cfg = {
        "task": "embedding",
        "output_dir": str(runs),
        "data": {"train": str(train), "validation": str(DATA / "pairs_validation.jsonl"),
                 "knowledge_base": "python-docs-nofaq"},
        "train": {"max_length": 128},
    }  # fmt: skip
    start = time.perf_counter()
    run = tunesmith.finetune(cfg)
    s = run.manifest["metrics"]
    out["retrieval" + ("_with_kb_pairs" if with_kb_pairs else "")] = {
        "wall_s": time.perf_counter() - start,
        "corpus": s["corpus"], "n": s["n"], "kept": (run.manifest.get("kept") or {}).get("model"),
        "base": {k: s["base"][k] for k in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10")},
        "tuned": {k: s["tuned"][k] for k in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10")},
        "tuned_minus_base": s["tuned_minus_base"], "run": str(run.path),
    }  # fmt: skip
    print(json.dumps(out["retrieval" + ("_with_kb_pairs" if with_kb_pairs else "")], indent=2), flush=True)


def answering(out: dict, runs: Path) -> None:
    """Two runs on the same held-out questions: plain LoRA (its base column is the base model without retrieval)
    and RAFT (its base column is the base model with retrieval)."""
    import tunesmith
    from tunesmith.eval.compare import bootstrap_mean_interval, paired_bootstrap_mean

    base = {
        "task": "causal-lm",
        "output_dir": str(runs),
        "data": {"train": str(DATA / "train.jsonl"), "validation": str(DATA / "validation.jsonl")},
        "eval": {"generate_examples": 64, "max_new_tokens": 128},
    }
    columns: dict[str, list[dict]] = {}
    walls = {}
    for name, extra in (("plain", {}), ("raft", {"knowledge_base": "python-docs"})):
        cfg = json.loads(json.dumps(base))
        cfg["data"].update(extra)
        start = time.perf_counter()
        run = tunesmith.finetune(cfg)
        walls[name] = time.perf_counter() - start
        columns[name] = [json.loads(x) for x in (run.path / "validation_generations.jsonl").read_text().splitlines()]
    setups = {
        "base, no retrieval": ("plain", "base"),
        "base + retrieval": ("raft", "base"),
        "fine-tuned, no retrieval": ("plain", "tuned"),
        "fine-tuned + retrieval (RAFT)": ("raft", "tuned"),
    }
    table = {}
    for label, (run, col) in setups.items():
        metrics = ("token_f1", "rouge_l", *(["support"] if run == "raft" else []))
        values = {m: [r[f"{m}_{col}"] for r in columns[run]] for m in metrics}
        table[label] = {m: (float(np.mean(v)), bootstrap_mean_interval(v, 1000, 0.95)) for m, v in values.items()}
    raft = [r["token_f1_tuned"] for r in columns["raft"]]
    vs = {
        "RAFT - base + retrieval": paired_bootstrap_mean(raft, [r["token_f1_base"] for r in columns["raft"]], 1000,
                                                         0.95),
        "RAFT - fine-tuned, no retrieval": paired_bootstrap_mean(raft, [r["token_f1_tuned"] for r in columns["plain"]],
                                                                 1000, 0.95),
    }  # fmt: skip
    declined = sum("do not answer" in r["tuned"] for r in columns["raft"])
    out["answering"] = {"setups": table, "token_f1_differences": vs, "n": len(raft), "wall_s": walls,
                        "raft_declined": declined}  # fmt: skip
    print(json.dumps(out["answering"], indent=2, default=float), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=("index", "retrieval", "answering"))
    p.add_argument("--kb-pairs", action="store_true", help="retrieval: also train on the knowledge base's pairs")
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "knowledge"))
    p.add_argument("--reuse", action="store_true", help="keep an existing knowledge base (no cold build time)")
    a = p.parse_args(argv)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TUNESMITH_KNOWLEDGE", str(out_dir / "kb"))
    if not DOCS.is_dir():
        sys.exit(f"{DOCS} is missing: install the Debian package python3.11-doc (make install does)")
    ensure_data()
    results: dict = {}
    parts = a.only or ["index", "retrieval", "answering"]
    if "index" in parts or "answering" in parts:
        if "index" in parts:
            index(results, fresh=not a.reuse)
        else:
            from tunesmith import api

            api.kb_build([str(DOCS / "faq"), *(str(DOCS / d) for d in OTHER)], "python-docs")
    if "retrieval" in parts:
        retrieval(results, out_dir / "runs", a.kb_pairs)
    if "answering" in parts:
        answering(results, out_dir / "runs")
    name = "results" + ("-" + "-".join(a.only) if a.only else "") + ("-kb-pairs" if a.kb_pairs else "") + ".json"
    (out_dir / name).write_text(json.dumps(results, indent=2, default=float))
    print(f"results: {out_dir / name}")


if __name__ == "__main__":
    main()
