"""finetune(): the whole path from a config to a finished run directory, as short named phases.

    check (read, preprocess, resolve the config: nothing written on a fatal problem)
    -> start (the run directory, the resolved config, the data report)
    -> prepare (tokenize or resize, cached; build the model; baselines on the untouched model)
    -> train (the method, on fit())
    -> finish (evaluate against the baselines, export, the manifest)

The task supplies every task-specific step (tasks/base.py), the method what trains (methods/base.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith import config as cfgmod
from tunesmith.config import Config, Default
from tunesmith.data.validate import DataReport, Examples
from tunesmith.eval.panels import write_run_info
from tunesmith.files import write_json
from tunesmith.methods import get_method
from tunesmith.methods.base import Job, Method, export_transformers
from tunesmith.methods.training import FROZEN, UNTOUCHED
from tunesmith.models.catalog import ModelSource, resolve
from tunesmith.pipeline.model_card import write_model_cards
from tunesmith.pipeline.resolve import data_driven_defaults, resolve_config
from tunesmith.rundir import FINISHED, Run, check_writable, locate_run, package_versions, write_status
from tunesmith.runtime import quiet_libraries, seed_everything, set_threads
from tunesmith.tasks import get_task
from tunesmith.tasks.base import Prepared, Task, TaskData
from tunesmith.train import meter, trackers
from tunesmith.train.loop import Interrupted, make_accelerator
from tunesmith.train.result import FitResult

Select = Callable[[Examples, Examples], tuple[Examples, Examples]]


@dataclass
class Checked:
    """What the check phase found: the data, the model source, the preprocessor and the resolved config."""

    task: Task
    method: Method
    data: TaskData
    source: ModelSource
    preprocessor: Any
    input_size: int
    chosen: list[Default]
    resolved: Config


PHASES = {
    "read_and_check": "reading and checking the data; loading the tokenizer or image preprocessing",
    "tokenize": "preparing the inputs (cached for the next run)",
    "load_model": "loading the pre-trained model",
    "baselines": "baselines on the untouched model (frozen features, linear probe or base answers)",
    "train": "training",
    "evaluate": "evaluating against the baselines on the validation data; writing the report",
    "export": "saving the model",
}


@dataclass
class Timer:
    start: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)
    quiet: bool = field(default_factory=lambda: os.environ.get("RANK", "0") != "0")  # one voice under torchrun

    def say(self, name: str) -> None:
        if not self.quiet:
            elapsed = int(time.perf_counter() - self.start)
            print(
                f"tunesmith [{elapsed // 60}:{elapsed % 60:02d}] {PHASES.get(name, name)}…", file=sys.stderr, flush=True
            )

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (manifest ``timings_s``), say it on stderr, and tell the work meter which phase its work
        belongs to."""
        self.say(name)
        meter.phase(name)
        t = time.perf_counter()
        yield
        self.phases[name] = time.perf_counter() - t


def inspect(cfg: Config, select: Select | None = None) -> tuple[Task, TaskData, ModelSource, Any, int]:
    """Every data check: (task, data, model source, preprocessor, input size); DataError on fatal problems."""
    task = get_task(cfg.task)(cfg)
    data = task.read()
    if select is not None:
        data.train, data.val = select(data.train, data.val)
    source = resolve(cfg.model, cfg.cache_dir, allow_pickle=cfg.trust_remote_code)
    preprocessor = task.load_preprocessor(source, data)
    return task, data, source, preprocessor, task.check_inputs(preprocessor, data)


def check(cfg: Config, select: Select | None = None) -> Checked:
    """Read and check the data, load the preprocessor, resolve every open key. Writes nothing."""
    task, data, source, preprocessor, input_size = inspect(cfg, select)
    method = method_for_data(cfg, len(data.train), len(set(data.train.labels)))
    if method is not None:
        cfg = cfgmod.from_dict(cfgmod.to_dict(cfg), [method.override()])
    chosen = data_driven_defaults(cfg, data, source, input_size)
    chosen = ([method] if method is not None else []) + chosen
    resolved = resolve_config(cfg, chosen, input_size)
    task.cfg = resolved  # from here on every hook reads the resolved config
    task.bill_tokens(data.report, resolved)
    return Checked(task, get_method(resolved.method), data, source, preprocessor, input_size, chosen, resolved)


def method_for_data(cfg: Config, n_train: int, classes: int = 2) -> Default | None:
    """The task's method for this much data when the config names none and it differs from the task's default."""
    if not getattr(cfg, "method_open", False):
        return None
    method, why = get_task(cfg.task).default_method(n_train, classes)
    return Default("method", method, why) if method != cfg.method else None


def validate(cfg: Config) -> DataReport:
    """Every data check of a run, without training: the report (warnings, stats); DataError on fatal ones."""
    quiet_libraries()  # the tokenizer's "longer than the maximum" notice: the report's truncation line says it
    return inspect(cfg)[1].report


def finetune(
    cfg: Config,
    resume: bool | str | Path = False,
    run_dir: str | Path | None = None,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    select: Select | None = None,
) -> Run:
    """Check the data, train with the configured method, evaluate against baselines, write the run.

    ``resume=True`` continues the newest unfinished run under ``output_dir``; a path names the run.
    ``on_eval(record)`` sees every validation evaluation during training (a search prunes through it: True stops
    training, an exception abandons the run); ``select(train, val)`` may narrow the data after reading."""
    timer = Timer()
    check_writable(cfg.output_dir)
    trackers.chosen(cfg.train.report_to)  # a tracker that is not installed is refused before anything is written
    threads = set_threads(cfg.train.threads)
    quiet_libraries()
    with timer.phase("read_and_check"):
        c = check(cfg, select)
    run = locate_run(cfg.output_dir, cfg.task, c.resolved.method, resume, run_dir)  # the method the data chose
    if resume:
        check_same_training(run, c.resolved)
    accelerator = make_accelerator()
    main = accelerator.is_main_process
    if main:
        start(run, c)
    with recorded(run, main):
        return train_and_finish(c, run, timer, threads, accelerator, bool(resume), on_eval)


@contextlib.contextmanager
def recorded(run: Path, main: bool) -> Iterator[None]:
    """``RUN/status.json`` says what became of the run: running while this block runs, then finished, interrupted
    (a signal or Ctrl-C: a checkpoint may let it resume) or failed with the error (rundir.run_status reads it)."""
    if not main:
        yield
        return
    write_status(run, "running")
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as exc:
        write_status(run, "interrupted", error=str(exc) or "interrupted")
        raise
    except BaseException as exc:
        write_status(run, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    write_status(run, FINISHED)


def train_and_finish(
    c: Checked, run: Path, timer: Timer, threads: int, accelerator: Any, resume: bool, on_eval: Any
) -> Run:
    """Prepare, train and finish a started run (its folder holds the resolved config and data report)."""
    main = accelerator.is_main_process
    accelerator.wait_for_everyone()
    with timer.phase("tokenize"):
        prep = c.task.prepare(c.preprocessor, c.data, c.input_size)
    seed_everything(c.resolved.train.seed)
    timer.say("load_model")
    model = c.task.build_model(c.source, c.data)
    with timer.phase("baselines"):
        baseline = c.task.before_training(model, prep, c.source, main)
    job = make_job(c, prep, model, baseline, run, resume, accelerator, on_eval)
    with timer.phase("train"):
        fit = c.method.train(job)
    end_processes(accelerator)
    if not main:
        return Run(run, {})
    model = accelerator.unwrap_model(job.model)
    with timer.phase("evaluate"):
        results = c.task.finish(run, c.resolved, model, prep, baseline, c.data.report, fit)
    meter.phase("export")
    timer.say("export")
    if job.kept and job.kept["model"] != "fine-tuned":  # the frozen encoder with its head: plain weights
        export = export_transformers(model, run / "model")
    else:
        export = c.method.export(model, run / "model", c.resolved, check=c.task.parity_check(prep))
    for folder in ("model", "adapter"):
        if (run / folder).is_dir():
            c.task.save_preprocessor(c.preprocessor, run / folder)
    timer.phases["total"] = time.perf_counter() - timer.start
    manifest = build_manifest(c, prep, fit, job, export, results, timer, threads, accelerator)
    write_model_cards(run, manifest)
    write_json(run / "manifest.json", manifest)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the manifest is written: the run is complete
    return Run(run, manifest)


# Keys a resumed run may change: where things go and how the machine runs, never what is trained.
RESUME_MAY_CHANGE = ("output_dir", "cache_dir", "train.threads", "train.checkpoint_every", "train.keep_checkpoints",
                     "eval.")  # fmt: skip


def check_same_training(run: Path, resolved: Config) -> None:
    """A resumed run continues the same training: ConfigError naming every key whose resolved value differs from
    the run's config.yaml (a new batch size or learning rate would silently mix two trainings in one model)."""
    saved = run / "config.yaml"
    if not saved.is_file():
        return
    before = cfgmod.flat_keys(cfgmod.read_config_yaml(saved) or {})
    now = cfgmod.flat_keys(cfgmod.to_dict(resolved))
    changed = sorted(k for k in before.keys() | now.keys()
                     if before.get(k) != now.get(k) and not k.startswith(RESUME_MAY_CHANGE))  # fmt: skip
    if changed:
        listed = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise cfgmod.ConfigError(
            f"--resume {run}: the config differs from the run's own in what is trained ({listed}); resume with the "
            f"run's config ({saved}), or start a new run"
        )


def start(run: Path, c: Checked) -> None:
    """The run directory, once every check passed: the resolved config and the data report."""
    run.mkdir(parents=True, exist_ok=True)
    cfgmod.dump(c.resolved, run / "config.yaml")
    write_json(run / "data_report.json", c.data.report.to_dict())
    write_run_info(
        run,
        {
            "data_fingerprint": c.data.fingerprint,
            "model_fingerprint": c.source.fingerprint,
            "versions": package_versions(),
        },
    )


def make_job(
    c: Checked, prep: Prepared, model: Any, baseline: Any, run: Path, resume: bool, accelerator: Any, on_eval: Any
) -> Job:
    no_choice = None
    if prep.select_items is None and c.data.report.no_selection:  # too small to spare a selection split
        no_choice = (
            f"{c.data.report.no_selection}, and the validation data is never chosen on (the run trained its planned "
            "steps and kept the fine-tuned model)"
        )
    return Job(
        cfg=c.resolved,
        task=c.task,
        model=model,
        train_items=prep.train_items,
        val_items=prep.choice_items,
        lengths=prep.lengths,
        collate=prep.collate,
        evaluate=None if no_choice else c.task.evaluator(prep),
        run_dir=run,
        resume=resume,
        accelerator=accelerator,
        labels=c.data.labels,
        features=c.task.method_features(baseline),
        encode=c.task.method_encoder(prep, baseline),
        on_eval=on_eval,
        rebuild=lambda: c.task.build_model(c.source, c.data),
        untouched=c.task.untouched_choice(baseline),
        judge=None if no_choice else c.task.untouched_judge(prep),
        groups=getattr(c.data.train, "groups", None) or None,
        held_items=prep.select_items,
        held_groups=getattr(c.data.select, "groups", None) or None,
        no_choice=no_choice,
    )


def end_processes(accelerator: Any) -> None:
    """Training held the last collective. Close the process group on every rank together, so that no rank exits
    with gloo threads still running (seen as "terminate called without an active exception" on a worker that
    returned while the main rank was still writing the report)."""
    if accelerator.num_processes > 1:
        import torch.distributed as dist

        accelerator.wait_for_everyone()
        dist.destroy_process_group()


def build_manifest(
    c: Checked,
    prep: Prepared,
    fit: FitResult,
    job: Job,
    export: dict[str, Any],
    results: dict[str, Any],
    timer: Timer,
    threads: int,
    accelerator: Any,
) -> dict[str, Any]:
    cfg = c.resolved
    extras = c.task.manifest_extras(prep)
    return {
        "status": "complete",
        "tunesmith_run": 1,
        "task": cfg.task,
        "method": cfg.method,
        "base_model": {"spec": cfg.model, "path": c.source.path, "fingerprint": c.source.fingerprint},
        "data": {
            "train": cfg.data.train,
            "validation": cfg.data.validation,
            "fingerprint": c.data.fingerprint,
            "train_examples": len(c.data.train),
            "validation_examples": len(c.data.val),
            **extras.pop("data", {}),
        },
        **extras,
        "max_length": c.input_size,
        "defaults": [{"key": d.key, "value": d.value, "why": d.why} for d in c.chosen],
        "export": export,
        "versions": package_versions(),
        "threads": threads,
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "timings_s": {k: round(v, 2) for k, v in timer.phases.items()},
        "fit": fit_summary(fit, job.warm_start, job.kept),
        "kept": job.kept or {"model": "fine-tuned" if c.method.keeps_activations else "frozen encoder + head"},
        "metrics": results["summary"],
        "report": "report.html",
    }


def fit_summary(fit: FitResult, warm_start: FitResult | None, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """``selection``: the kept model's own record on the selection split (the frozen head's when it was kept),
    with ``metric`` the one figure that chose it: what a search ranks the run by."""
    frozen = kept is not None and kept.get("model") == FROZEN[0] and warm_start is not None
    untouched = kept is not None and kept.get("model") == UNTOUCHED[0] and "frozen_selection" in kept
    out = {
        "metric": fit.metric,
        "selection": (warm_start.best if frozen else kept["frozen_selection"] if untouched else fit.best),
        "steps": fit.steps,
        "epochs": fit.epochs_run,
        "stopped": fit.stopped,
        "best_step": fit.best_step,
        "samples_per_s": round(fit.samples_per_second, 2),
        "step_seconds": round(fit.step_seconds, 2),
        "resumed_from": fit.resumed_from,
        "precision": fit.precision,
        "warm_start": None
        if warm_start is None
        else {"head_steps": warm_start.steps, "head_only_validation": warm_start.best},
        "refit": fit.refit,
        "frozen": fit.frozen,
    }
    if fit.positions:  # token figures where the inputs are tokens (image batches have none)
        out["tokens_per_s"] = round(fit.tokens_per_second, 2)
        out["padding_share"] = round(fit.padding_share, 4)
    return out
