"""The planner's probe: a real training run, cut short, in a child process of its own.

The child reads the full data (sizes, token lengths, the data-driven defaults of the real run), then runs
``finetune`` on a small stratified subset, the longest examples included, for a few optimizer steps with the
real run's batch, micro-batches, learning rate and evaluation settings, while the work meter records each
phase. It reports what it measured as JSON; its own peak memory is the probe's peak (a process of its own,
so nothing else counts). ``python -m tunesmith.planning.probe SPEC.json RESULT.json``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROBE_STEPS = 8  # the first two are set-up heavy and are not timed; the others give the time a step
MIN_VALIDATION = 32
PROBE_GENERATIONS = 2


def _select(batch: int, steps: int, n_train: int, n_val: int, seed: int) -> Any:
    """The probe's subset: ``steps`` batches of training examples (the longest batch among them, so the peak
    is the real run's) and the same share of validation, at least MIN_VALIDATION examples."""
    from tunesmith.data.split import stratified_sample

    m_train = min(n_train, batch * steps)
    m_val = min(n_val, max(MIN_VALIDATION, round(n_val * m_train / max(n_train, 1))))

    def select(train: Any, val: Any) -> tuple[Any, Any]:
        size = [len(repr(x)) for x in train.inputs]
        longest = sorted(range(len(train)), key=lambda i: -size[i])[: min(batch, m_train)]
        picked = set(longest)
        for i in stratified_sample(train.labels, m_train, seed):
            if len(picked) >= m_train:
                break
            picked.add(i)
        return train.subset(sorted(picked)), val.subset(stratified_sample(val.labels, m_val, seed))

    return select, m_train, m_val


def split_lengths(task: Any, cfg: Any, tokenizer: Any, train: Any, val: Any, max_length: int) -> dict[str, list[int]]:
    """Each example's tokens as the run will see them (cut at max_length), per split; empty for images."""
    if cfg.task == "text-classification":
        return {
            name: [min(n, max_length) for n in task.token_lengths(tokenizer, ex.inputs)]
            for name, ex in (("train", train), ("validation", val))
        }
    if cfg.task == "causal-lm":  # check_lengths rendered and cut every example already
        return {name: [len(it["input_ids"]) for it in items] for name, items in task.items_by_split.items()}
    return {}


def planned_positions(cfg: Any, lengths: list[int] | None, max_length: int) -> int | None:
    """Token positions one epoch of the real run computes (padding included), from the batches fit() will
    make over the training examples' ``lengths``; None where steps are not made of tokens (images)."""
    from tunesmith.train.batching import epoch_batches

    if lengths is None:
        return None
    tc = cfg.train
    accumulation = tc.gradient_accumulation or 1
    packed = cfg.task == "causal-lm" and tc.packing

    def positions(lens: list[int]) -> int:
        if not packed:  # each example its own row, padded to the longest in the micro-batch
            return len(lens) * max(lens)
        from tunesmith.tasks.causal_lm import PACK_MIN, pack_rows

        rows, fill = pack_rows(lens, max(max_length, PACK_MIN))
        return len(rows) * max(fill)

    order_lengths = None if packed else lengths  # packing batches are not grouped by length (prepare())
    total = 0
    for batch in epoch_batches(order_lengths, len(lengths), tc.batch_size, tc.seed, 0, tc.group_by_length):
        for i in range(accumulation):
            micro = batch[i::accumulation]
            if micro:
                total += positions([lengths[j] for j in micro])
    return total


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: measure, return the figures (see module docstring)."""
    t_imports = time.time()
    import torch  # noqa: F401 - the real run pays for these imports too: they are its start-up
    import transformers  # noqa: F401

    from tunesmith import api
    from tunesmith import config as cfgmod
    from tunesmith.methods import get_method
    from tunesmith.models.catalog import resolve
    from tunesmith.tasks import get_task
    from tunesmith.train import loop, meter  # noqa: F401

    cfg = cfgmod.from_dict(spec["config"])
    get_method(cfg.method)
    get_task(cfg.task)
    imported_at = time.time()
    api.set_threads(cfg)
    api.quiet_libraries()

    # --- the full data: sizes, lengths, the real run's defaults ----------------------------------
    t = time.perf_counter()
    task = get_task(cfg.task)(cfg)
    train, val, report, _ = task.read()
    source = resolve(cfg.model, cfg.cache_dir)
    tokenizer = task.load_tokenizer(source)
    max_length = task.check_lengths(tokenizer, train, val, report)
    read_full = time.perf_counter() - t
    chosen = api.data_driven_defaults(cfg, task, source, len(train), max_length)
    real = cfgmod.from_dict(cfgmod.to_dict(cfg), [d.override() for d in chosen])
    lengths = split_lengths(task, real, tokenizer, train, val, max_length)
    positions = planned_positions(real, lengths.get("train"), max_length)
    tokens = {split: sum(values) for split, values in lengths.items()}
    n_train, n_val = len(train), len(val)
    classes = len(set(train.labels))
    mean_tokens = report.stats.get("tokens", {}).get("train", {}).get("mean", 0)
    del train, val, task

    # --- the short run on a subset -------------------------------------------------------------
    select, m_train, m_val = _select(real.train.batch_size, PROBE_STEPS, n_train, n_val, real.train.seed)
    generations = min(real.eval.generate_examples, PROBE_GENERATIONS) if cfg.task == "causal-lm" else 0
    probe_overrides = [
        "train.epochs=1",
        "train.eval_every=0",
        "train.early_stopping_patience=0",
        "train.max_steps=null",
        f"train.checkpoint_every={PROBE_STEPS // 2}",  # the real run checkpoints at each evaluation: its memory
        f"train.max_length={max_length}",  # the full data's choice, not the subset's
        f"eval.generate_examples={generations}",
    ]
    probe_cfg = cfgmod.from_dict(cfgmod.to_dict(real), probe_overrides)
    with tempfile.TemporaryDirectory(prefix="tunesmith-probe-") as tmp, meter.recording() as records:
        if cfg.train.threads is None:
            probe_cfg = cfgmod.replace(probe_cfg, train=cfgmod.replace(probe_cfg.train, threads=api.available_cores()))
        run = api.finetune(probe_cfg, run_dir=Path(tmp) / "run", select=select)
        lines = (Path(tmp) / "run" / "logs" / "train.jsonl").read_text(encoding="utf-8").splitlines()
        log = [json.loads(x) for x in lines]
    steps = [r for r in log if r.get("kind") == "step"]
    evals = [r for r in log if r.get("kind") == "eval"]
    gpu_peak = 0

    if torch.cuda.is_available():
        gpu_peak = int(torch.cuda.max_memory_allocated())
    return {
        "import_s": imported_at - spec.get("spawned_at", t_imports),
        "read_full_s": read_full,
        "timings": run.manifest["timings_s"],
        "steps": [{k: r.get(k) for k in ("seconds", "samples", "positions")} for r in steps],
        "evaluations": len(evals),
        "meter": records,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "gpu_peak": gpu_peak,
        "sizes": {"train": m_train, "validation": m_val, "generations": generations},
        "full": {
            "train": n_train,
            "validation": n_val,
            "classes": classes,
            "mean_tokens": mean_tokens,
            "positions_per_epoch": positions,
            "tokens": tokens,
            "steps_per_epoch": -(-n_train // real.train.batch_size),
            "generations": min(real.eval.generate_examples, n_val) if cfg.task == "causal-lm" else 0,
        },
        "max_length": max_length,
        "defaults": [{"key": d.key, "value": d.value, "why": d.why} for d in chosen],
        "resolved": {
            "epochs": real.train.epochs,
            "eval_every": real.train.eval_every,
            "batch_size": real.train.batch_size,
            "gradient_accumulation": real.train.gradient_accumulation,
            "head_epochs": real.head.epochs,
        },
    }


def probe(config: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run the probe of one option in a child process; {"error": ...} when it fails or is killed."""
    with tempfile.TemporaryDirectory(prefix="tunesmith-plan-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        started = time.time()
        spec_path.write_text(json.dumps({"config": config, "spawned_at": started}), encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "tunesmith.planning.probe", str(spec_path), str(out_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"the probe ran past {timeout:.0f} s"}
        wall = time.time() - started
        if proc.returncode != 0 or not out_path.is_file():
            if proc.returncode < 0:
                why = f"killed by signal {-proc.returncode} (out of memory?)"
            else:
                tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
                why = f"exited with {proc.returncode}: {tail[0][:300]}"
            return {"error": why}
        result = json.loads(out_path.read_text(encoding="utf-8"))
        result["wall_s"] = wall
        return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = run_probe(spec)
    Path(argv[1]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
