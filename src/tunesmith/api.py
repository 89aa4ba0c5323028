"""The public operations: finetune, validate, evaluate, predict, load. Orchestration only."""

from __future__ import annotations

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
from tunesmith.train import meter


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
    import warnings

    import transformers

    # PEFT asks a deprecated transformers property on every wrap; the warning is theirs, not the user's.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
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
    tokenizer = task.load_tokenizer(resolve(cfg.model, cfg.cache_dir))
    task.check_lengths(tokenizer, train, val, report)
    return report


def finetune(
    config: Config | str | Path | dict,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool | str | Path = False,
    run_dir: str | Path | None = None,
    on_eval: Any = None,
    select: Any = None,
) -> Run:
    """Check the data, train with the configured method, evaluate against baselines, write the run.

    ``resume=True`` continues the newest unfinished run under ``output_dir``; a path names the run. The task
    supplies every task-specific step (see tunesmith.tasks); this function only orders them. ``on_eval(record)``
    sees every validation evaluation during training (a search prunes through it: True stops training, an
    exception abandons the run); ``select(train, val)`` may narrow the data after reading (the planner's probe)."""
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

    # --- check everything before writing anything --------------------------------------------
    meter.phase("read_and_check")
    train, val, report, data_fp = task.read()
    if select is not None:
        train, val = select(train, val)
    source = resolve(cfg.model, cfg.cache_dir)
    tokenizer = task.load_tokenizer(source)
    max_length = task.check_lengths(tokenizer, train, val, report)
    timings["read_and_check"] = time.perf_counter() - t_start
    chosen = data_driven_defaults(cfg, task, source, len(train), max_length)
    cfg = cfgmod.from_dict(cfgmod.to_dict(cfg), [d.override() for d in chosen])
    lr = cfg.train.learning_rate or getattr(cfg.method_options, "learning_rate", None) or method.default_lr
    resolved = cfgmod.from_dict(cfgmod.to_dict(cfg), [f"train.max_length={max_length}", f"train.learning_rate={lr}"])
    if hasattr(task, "bill_tokens"):
        task.bill_tokens(report, resolved)

    run = _locate_run(cfg, resume, run_dir)
    accelerator = make_accelerator(cfg.train)
    main = accelerator.is_main_process
    if main:
        run.mkdir(parents=True, exist_ok=True)
        cfgmod.dump(resolved, run / "config.yaml")
        write_json(run / "data_report.json", report.to_dict())
    accelerator.wait_for_everyone()

    # --- tokenize (cached), build the model, measure the baselines on the untouched model -------
    t = time.perf_counter()
    meter.phase("tokenize")
    prep = task.prepare(tokenizer, train, val, max_length)
    timings["tokenize"] = time.perf_counter() - t
    seed_everything(cfg.train.seed)
    model = task.build_model(source)
    t = time.perf_counter()
    meter.phase("baselines")
    baseline = task.before_training(model, prep, source, main)
    timings["baselines"] = time.perf_counter() - t

    job = Job(
        cfg=resolved,
        task=task,
        model=model,
        train_items=prep.train_items,
        val_items=prep.val_items,
        lengths=prep.lengths,
        collate=prep.collate,
        evaluate=task.evaluator(prep),
        run_dir=run,
        resume=bool(resume),
        accelerator=accelerator,
        features=task.method_features(baseline),
        on_eval=on_eval,
    )
    t = time.perf_counter()
    meter.phase("train")
    fit_result = method.train(job)
    timings["train"] = time.perf_counter() - t
    if accelerator.num_processes > 1:
        # Training held the last collective. Close the process group on every rank together, so that no rank
        # exits with gloo threads still running (seen as "terminate called without an active exception" on a
        # worker that returned while the main rank was still writing the report).
        import torch.distributed as dist

        accelerator.wait_for_everyone()
        dist.destroy_process_group()
    if not main:
        return Run(run, {})

    # --- evaluate against the baselines, export, report ----------------------------------------
    t = time.perf_counter()
    meter.phase("evaluate")
    model = accelerator.unwrap_model(job.model)
    results = task.finish(run, resolved, model, prep, baseline, report, fit_result)
    timings["evaluate"] = time.perf_counter() - t
    meter.phase("export")
    export = method.export(model, run / "model", resolved, check=task.parity_check(prep))
    for folder in ("model", "adapter"):
        if (run / folder).is_dir() and hasattr(tokenizer, "save_pretrained"):  # image models carry their own
            tokenizer.save_pretrained(run / folder)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the exported model replaces them
    timings["total"] = time.perf_counter() - t_start
    extras = task.manifest_extras(prep)
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
            **extras.pop("data", {}),
        },
        **extras,
        "max_length": max_length,
        "defaults": [{"key": d.key, "value": d.value, "why": d.why} for d in chosen],
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
            # Token figures where the inputs are tokens (image batches have none).
            **(
                {
                    "tokens_per_s": round(fit_result.tokens_per_second, 2),
                    "padding_share": round(fit_result.padding_share, 4),
                }
                if fit_result.positions
                else {}
            ),
        },
        "metrics": results["summary"],
        "report": "report.html",
    }
    write_json(run / "manifest.json", manifest)
    return Run(run, manifest)


def data_driven_defaults(
    cfg: Config, task: Any, source: Any, n_train: int, max_length: int, hardware: Any = None
) -> list[Any]:
    """Values for the keys the config left open that follow the data and the machine (docs/planning.md);
    ``hardware`` defaults to this machine's."""
    from tunesmith.planning.defaults import data_driven
    from tunesmith.planning.hardware import detect
    from tunesmith.planning.model_facts import model_facts

    classes = len(getattr(task, "labels", None) or []) or 2
    return data_driven(cfg, n_train, model_facts(source, cfg.task), max_length, hardware or detect(), classes)


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


def load(run: str | Path, backend: str = "auto") -> Any:
    """A finished run, ready for use: a classifier's ``.predict(texts)`` gives labels and probabilities; a
    generator's ``.generate(prompt)`` answers (``.stream(prompt)`` yields the answer as it is written).

    ``run`` is a run directory or a registered model (``name``, ``name@v2``, ``name@prod``), whose files are
    checked against their registered checksums before use. ``backend``: ``auto`` (a classifier's checked ONNX
    export when present), ``torch`` or ``onnx``."""
    from tunesmith.predictor import load as _load
    from tunesmith.store import resolve_run

    return _load(resolve_run(run), backend)


def evaluate(run_dir: str | Path, data: str | Path) -> dict[str, Any]:
    """Metrics of a finished run's model on a file like its validation data."""
    from tunesmith.eval.metrics import classification_metrics

    model = load(run_dir)
    if hasattr(model, "evaluate_file"):
        return model.evaluate_file(data)
    texts, labels, _ = model.read_labelled(data)
    probs = model.predict_proba(texts)
    index = {lab: i for i, lab in enumerate(model.labels)}
    y = np.array([index[lab] for lab in labels])
    return classification_metrics(y, probs, model.labels)


def predict(run_dir: str | Path, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
    """Predict (classify, or answer) every row of input_file; returns the row count. Generation takes
    ``max_new_tokens``, ``temperature``, ``top_p`` and ``seed``."""
    return load(run_dir).predict_file(input_file, output_file, **options)


def merge_adapter(run_dir: str | Path) -> Path:
    """Merge a LoRA run's adapter into full weights, saved as ``RUN/model`` in Hugging Face format, kept only if
    it reproduces base + adapter on the run's golden held-out examples (probabilities for classifiers, greedy
    outputs for generators)."""
    from tunesmith.errors import InputError
    from tunesmith.methods.lora import merge_checked

    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(
            f"{run_dir}: export writes into a run directory; registered versions are read-only (export the run, "
            "then register it)"
        )
    manifest = read_manifest(run)
    export = manifest.get("export", {})
    if export.get("format") == "transformers" and not export.get("adapter"):
        raise InputError(f"{run}: this run's model is already full weights (method {manifest.get('method')})")
    if export.get("merged"):
        return run / export["path"]
    loaded = load(run)
    info = merge_checked(loaded.model, run / "model", loaded.parity_check())
    loaded.tokenizer.save_pretrained(run / "model")
    manifest["export"] = {**export, **info}
    write_json(run / "manifest.json", manifest)
    return run / "model"


def run_info(run: str | Path) -> dict[str, Any]:
    from tunesmith.store import resolve_run

    return read_manifest(resolve_run(run))
