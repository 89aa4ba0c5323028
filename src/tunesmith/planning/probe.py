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

from tunesmith.files import read_jsonl

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


def planned_positions(cfg: Any, lengths: list[int] | None, capacity: int | None) -> int | None:
    """Token positions one epoch of the real run computes (padding included), from the batches fit() will
    make over the training examples' ``lengths`` (packed into rows of ``capacity`` tokens, or one row each);
    None where steps are not made of tokens (images)."""
    from tunesmith.train.batching import epoch_batches, pack_rows

    if lengths is None:
        return None
    tc = cfg.train

    def positions(lens: list[int]) -> int:
        if capacity is None:  # each example its own row, padded to the longest in the micro-batch
            return len(lens) * max(lens)
        rows, fill = pack_rows(lens, capacity)
        return len(rows) * max(fill)

    order_lengths = None if capacity is not None else lengths  # packed batches are not grouped by length
    total = 0
    for batch in epoch_batches(order_lengths, len(lengths), tc.batch_size, tc.seed, 0, tc.group_by_length):
        for i in range(tc.gradient_accumulation):
            micro = batch[i :: tc.gradient_accumulation]
            if micro:
                total += positions([lengths[j] for j in micro])
    return total


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: measure, return the figures (see module docstring)."""
    t_imports = time.time()
    import torch  # noqa: F401 - the real run pays for these imports too: they are its start-up
    import transformers  # noqa: F401

    from tunesmith import config as cfgmod
    from tunesmith.config import coerce
    from tunesmith.methods import get_method
    from tunesmith.pipeline.finetune import check, finetune
    from tunesmith.runtime import available_cores, quiet_libraries, set_threads
    from tunesmith.tasks import get_task
    from tunesmith.train import loop, meter  # noqa: F401

    cfg = cfgmod.from_dict(spec["config"])
    get_method(cfg.method)
    get_task(cfg.task)
    imported_at = time.time()
    set_threads(cfg.train.threads)
    quiet_libraries()

    # --- the full data: sizes, lengths, the real run's defaults ----------------------------------
    t = time.perf_counter()
    c = check(cfg)
    read_full = time.perf_counter() - t
    real, max_length, chosen = c.resolved, c.input_size, c.chosen
    lengths = c.task.training_lengths(c.preprocessor, c.data, max_length)
    positions = planned_positions(real, lengths.get("train"), c.task.row_capacity(max_length))
    tokens = {split: sum(values) for split, values in lengths.items()}
    n_train, n_val = len(c.data.train), len(c.data.val)
    classes = len(set(c.data.train.labels))
    mean_tokens = c.data.report.stats.get("tokens", {}).get("train", {}).get("mean", 0)
    generates = c.task.generates_at_evaluation
    del c

    # --- the short run on a subset -------------------------------------------------------------
    select, m_train, m_val = _select(real.train.batch_size, PROBE_STEPS, n_train, n_val, real.train.seed)
    generations = min(real.eval.generate_examples, PROBE_GENERATIONS) if generates else 0
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
            probe_cfg = cfgmod.replace(probe_cfg, train=cfgmod.replace(probe_cfg.train, threads=available_cores()))
        run = finetune(coerce(probe_cfg), run_dir=Path(tmp) / "run", select=select)
        log_path = Path(tmp) / "run" / "logs" / "train.jsonl"
        log = read_jsonl(log_path) if log_path.is_file() else []  # a head fitted in closed form takes no steps
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
            "generations": min(real.eval.generate_examples, n_val) if generates else 0,
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
