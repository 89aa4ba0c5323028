"""The public operations: finetune, validate, evaluate, predict, load. Orchestration only."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith import config as cfgmod
from tunesmith.config import Config
from tunesmith.data.validate import DataReport
from tunesmith.models.catalog import resolve
from tunesmith.run import Run, latest_unfinished, new_run_dir, package_versions, read_manifest, write_json


def as_config(config: Config | str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    if isinstance(config, Config):
        return cfgmod.from_dict(cfgmod.to_dict(config), overrides) if overrides else config
    if isinstance(config, dict):
        return cfgmod.from_dict(config, overrides)
    return cfgmod.load(config, overrides)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def quiet_libraries() -> None:
    """Our progress bar and report speak for the run; the libraries' load chatter goes."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def set_threads(cfg: Config) -> int:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    threads = cfg.train.threads or max(1, available_cores() // world)
    torch.set_num_threads(threads)
    return threads


def release_memory() -> None:
    """Hand memory freed after a big phase back to the system, so it does not add to the training peak."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validate(config: Config | str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> DataReport:
    """Run every data check; raises DataError on fatal problems, returns the report (warnings, stats)."""
    from tunesmith.tasks import get_task

    cfg = as_config(config, overrides)
    task = get_task(cfg.task)(cfg)
    train, val, report, _ = task.read()
    tokenizer = task.load_tokenizer(resolve(cfg.model))
    task.check_lengths(tokenizer, train, val, report)
    return report


def finetune(
    config: Config | str | Path | dict,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool | str | Path = False,
    run_dir: str | Path | None = None,
) -> Run:
    """Check the data, train with the configured method, evaluate against baselines, write the run.

    ``resume=True`` continues the newest unfinished run under ``output_dir``; a path names the run."""
    from tunesmith.methods import Job, get_method
    from tunesmith.tasks import get_task
    from tunesmith.train.loop import make_accelerator

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    cfg = as_config(config, overrides)
    threads = set_threads(cfg)
    quiet_libraries()
    task = get_task(cfg.task)(cfg)
    method = get_method(cfg.method)
    source = resolve(cfg.model)

    # --- check everything before writing anything --------------------------------------------
    train, val, report, data_fp = task.read()
    tokenizer = task.load_tokenizer(source)
    max_length = task.check_lengths(tokenizer, train, val, report)
    labels = task.labels
    timings["read_and_check"] = time.perf_counter() - t_start
    lr = cfg.train.learning_rate or getattr(cfg.method_options, "learning_rate", None) or method.default_lr
    resolved = cfgmod.from_dict(cfgmod.to_dict(cfg), [f"train.max_length={max_length}", f"train.learning_rate={lr}"])

    run = _locate_run(cfg, resume, run_dir)
    accelerator = make_accelerator(cfg.train)
    main = accelerator.is_main_process
    if main:
        run.mkdir(parents=True, exist_ok=True)
        cfgmod.dump(resolved, run / "config.yaml")
        write_json(run / "data_report.json", report.to_dict())
    accelerator.wait_for_everyone()

    # --- tokenize once (cached), build the model ------------------------------------------------
    t = time.perf_counter()
    split_keys = (train.content_key(), val.content_key())
    train_ids = task.encode(tokenizer, train.inputs, max_length, split_keys[0])
    val_ids = task.encode(tokenizer, val.inputs, max_length, split_keys[1])
    timings["tokenize"] = time.perf_counter() - t
    seed_everything(cfg.train.seed)
    model = task.build_model(source, labels)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    frozen = _FrozenFeatures(
        task, model, source.fingerprint, split_keys, max_length, train_ids, val_ids, pad_id, cfg.cache_dir
    )
    if cfg.eval.probe and main:
        t = time.perf_counter()
        frozen.get()  # from the untouched pre-trained body, before any weight changes
        timings["frozen_features"] = time.perf_counter() - t
        release_memory()

    train_items = task.items(train_ids, train.labels, labels)
    val_items = task.items(val_ids, val.labels, labels)
    val_y = np.array([it["labels"] for it in val_items])

    def evaluate(m: Any) -> dict[str, float]:
        from tunesmith.eval.metrics import classification_metrics

        probs = task.predict_proba(m, val_ids, pad_id, cfg.eval.batch_size)
        res = classification_metrics(val_y, probs, labels)
        return {"loss": res["loss"], "accuracy": res["accuracy"], "macro_f1": res["macro_f1"]}

    job = Job(
        cfg=resolved,
        task=task,
        model=model,
        train_items=train_items,
        val_items=val_items,
        lengths=[len(x) for x in train_ids],
        collate=task.collate(pad_id),
        evaluate=evaluate,
        run_dir=run,
        resume=bool(resume),
        accelerator=accelerator,
        features=frozen.for_method,
    )
    t = time.perf_counter()
    fit_result = method.train(job)
    timings["train"] = time.perf_counter() - t
    if not main:
        return Run(run, {})

    # --- evaluate against the baselines, export, report ----------------------------------------
    from tunesmith.eval.report import build_report

    t = time.perf_counter()
    model = accelerator.unwrap_model(job.model)
    probs = task.predict_proba(model, val_ids, pad_id, cfg.eval.batch_size)
    train_y = np.array([it["labels"] for it in train_items])
    results = build_report(
        run,
        cfg=resolved,
        labels=labels,
        val_y=val_y,
        probs=probs,
        train_y=train_y,
        probe=frozen.probe(train_y, val_items, cfg.train.seed) if cfg.eval.probe else None,
        slices=val.extras,
        report=report,
        fit=fit_result,
        samples=[(x, ln) for x, ln in zip(val.inputs, val.lines)],
    )
    timings["evaluate"] = time.perf_counter() - t
    golden = val_ids[:256]
    export = method.export(
        model, run / "model", resolved, check=lambda m: task.predict_proba(m, golden, pad_id, cfg.eval.batch_size)
    )
    for folder in ("model", "adapter"):
        if (run / folder).is_dir():
            tokenizer.save_pretrained(run / folder)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the exported model replaces them
    timings["total"] = time.perf_counter() - t_start
    manifest = {
        "status": "complete",
        "tunesmith_run": 1,
        "task": cfg.task,
        "method": cfg.method,
        "base_model": {"spec": cfg.model, "path": source.path, "fingerprint": source.fingerprint},
        "data": {
            "train": cfg.data.train,
            "validation": cfg.data.validation,
            "fingerprint": data_fp,
            "train_examples": len(train),
            "validation_examples": len(val),
            "text_column": cfg.data.text_column,
            "label_column": cfg.data.label_column,
        },
        "label_map": dict(enumerate(labels)),
        "max_length": max_length,
        "export": export,
        "versions": package_versions(),
        "threads": threads,
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "fit": {
            "steps": fit_result.steps,
            "epochs": fit_result.epochs_run,
            "stopped": fit_result.stopped,
            "best_step": fit_result.best_step,
            "samples_per_s": round(fit_result.samples_per_second, 2),
            "step_seconds": round(fit_result.step_seconds, 2),
            "resumed_from": fit_result.resumed_from,
            "precision": fit_result.precision,
            "warm_start": _warm_start_summary(job.warm_start),
        },
        "metrics": results["summary"],
        "report": "report.html",
    }
    write_json(run / "manifest.json", manifest)
    return Run(run, manifest)


def _warm_start_summary(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"head_steps": result.steps, "head_only_validation": result.best}


def _locate_run(cfg: Config, resume: bool | str | Path, run_dir: str | Path | None) -> Path:
    from tunesmith.errors import InputError

    if run_dir is not None:
        return Path(run_dir)
    if resume and not isinstance(resume, bool):
        path = Path(resume)
        if not (path / "checkpoints").is_dir():
            raise InputError(f"--resume {path}: no checkpoints there to resume from")
        return path
    if resume:
        found = latest_unfinished(cfg.output_dir)
        if found is None:
            raise InputError(f"--resume: no unfinished run with checkpoints under {cfg.output_dir}")
        return found
    return new_run_dir(cfg.output_dir, cfg.task, cfg.method)


class _FrozenFeatures:
    """Features of the frozen pre-trained body, computed once per (data, model, max_length) and cached."""

    def __init__(
        self,
        task: Any,
        model: Any,
        model_fp: str,
        split_keys: tuple[str, str],
        max_length: int,
        train_ids: list,
        val_ids: list,
        pad_id: int,
        cache_dir: str | None,
    ):
        self.task, self.model, self.pad_id = task, model, pad_id
        self.ids = {"train": train_ids, "val": val_ids}
        self.key = (model_fp, *split_keys, max_length)
        self.cache_dir = cache_dir
        self._feats: dict[str, dict[str, np.ndarray]] | None = None

    def get(self) -> dict[str, dict[str, np.ndarray]]:
        from tunesmith.data.cache import ArrayCache, cache_key, cache_root

        if self._feats is None:
            cache = ArrayCache(cache_root(self.cache_dir), "features")
            self._feats = {}
            for split, ids in self.ids.items():
                key = cache_key("frozen", split, *self.key)
                hit = cache.get(key)
                if hit is None:
                    hit = self.task.features(self.model, ids, self.pad_id)
                    cache.put(key, hit)
                self._feats[split] = hit
        return self._feats

    def for_method(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        feats = self.get()
        return feats["train"]["first"], feats["val"]["first"]

    def probe(self, train_y: np.ndarray, val_items: list, seed: int) -> dict[str, Any]:
        from tunesmith.eval.compare import linear_probe

        feats = self.get()
        probs, c = linear_probe(feats["train"]["mean"], train_y, feats["val"]["mean"], seed)
        return {"probs": probs, "C": c, "features": "mean-pooled last hidden state of the frozen pre-trained model"}


def load(run_dir: str | Path) -> Any:
    """A Predictor for a finished run: ``.predict(texts)`` gives labels and probabilities."""
    from tunesmith.predictor import load as _load

    return _load(run_dir)


def evaluate(run_dir: str | Path, data: str | Path) -> dict[str, Any]:
    """Metrics of a finished run's model on a labelled file (same columns as in training)."""
    from tunesmith.eval.metrics import classification_metrics

    predictor = load(run_dir)
    texts, labels, _ = predictor.read_labelled(data)
    probs = predictor.predict_proba(texts)
    index = {lab: i for i, lab in enumerate(predictor.labels)}
    y = np.array([index[lab] for lab in labels])
    return classification_metrics(y, probs, predictor.labels)


def predict(run_dir: str | Path, input_file: str | Path, output_file: str | Path) -> int:
    """Predict every row of input_file; writes JSONL or CSV (by the output's extension). Returns the row count."""
    predictor = load(run_dir)
    return predictor.predict_file(input_file, output_file)


def merge_adapter(run_dir: str | Path) -> Path:
    """Merge a LoRA run's adapter into full weights, saved as ``RUN/model`` in Hugging Face format, kept only if
    it predicts what base + adapter predicts on up to 256 of the run's validation texts."""
    from tunesmith.errors import InputError
    from tunesmith.methods.lora import merge_checked
    from tunesmith.predictor import load as load_predictor
    from tunesmith.tasks.text_classification import predict_proba

    run = Path(run_dir)
    manifest = read_manifest(run)
    export = manifest.get("export", {})
    if export.get("format") == "transformers" and not export.get("adapter"):
        raise InputError(f"{run}: this run's model is already full weights (method {manifest.get('method')})")
    if export.get("merged"):
        return run / export["path"]
    predictor = load_predictor(run)
    lines = (run / "validation_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    golden = predictor.encode([json.loads(line)["text"] for line in lines[:256]])
    info = merge_checked(predictor.model, run / "model", lambda m: predict_proba(m, golden, predictor.pad_id))
    predictor.tokenizer.save_pretrained(run / "model")
    manifest["export"] = {**export, **info}
    write_json(run / "manifest.json", manifest)
    return run / "model"


def run_info(run_dir: str | Path) -> dict[str, Any]:
    return read_manifest(Path(run_dir))
