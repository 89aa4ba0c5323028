"""tunesmith tune: an Optuna study over the config's search space, one normal run directory per trial.

Layout (OUTPUT_DIR/studies/NAME/): ``study.db`` (SQLite, unless ``--storage`` names another database),
``runs/trial-0007/`` (every trial a run directory; only the best keeps its weights), ``best.yaml`` (the
best trial's config, ready for ``tunesmith train``), ``trials.csv``, ``tune_report.html`` / ``.json``.

Trials report each per-epoch validation figure to the pruner and stop when it says so. A study stopped part
way (Ctrl-C, a killed process) resumes with the same command: finished trials are kept, the interrupted one
runs again with the same values, and only the trials still missing are run.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith import config as cfgmod
from tunesmith.errors import ConfigError, InputError, TrainingDiverged
from tunesmith.tuning.space import SearchSpace, parse_file

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PRUNERS = ("median", "halving", "none")
SAMPLERS = ("tpe", "random")


class _Pruned(Exception):
    """Raised inside training when the pruner stops a trial (not a TunesmithError: nothing went wrong)."""


@dataclass
class TuneResult:
    folder: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_config: Path | None
    report: Path | None
    ran: int
    seeds: dict[str, Any] | None = None


def study_folder(output_dir: str, name: str) -> Path:
    if not NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"--study {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return Path(output_dir) / "studies" / name


def _sampler(kind: str, seed: int, trials: int) -> Any:
    import optuna

    if kind not in SAMPLERS:
        raise ConfigError(f"--sampler {kind!r}: allowed: {', '.join(SAMPLERS)}")
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)))


def _pruner(kind: str, startup: int) -> Any:
    import optuna

    if kind not in PRUNERS:
        raise ConfigError(f"--pruner {kind!r}: allowed: {', '.join(PRUNERS)}")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _storage(url: str) -> Any:
    import warnings

    import optuna

    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna; they are what resume needs
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=30,
            grace_period=120,  # a trial whose process died is failed after two minutes of silence, then retried
            failed_trial_callback=_retry_callback(optuna)(max_retry=1),
        )


def _retry_callback(optuna: Any) -> Any:
    """Optuna 4.9 renamed the callback that retries a trial whose process died (the old name warns)."""
    storages = optuna.storages
    return getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback


def _drop_weights(run_dir: Path) -> None:
    """Keep a trial's config, manifest and report; its model weights go (only the best trial keeps them)."""
    for folder in ("model", "adapter", "onnx", "checkpoints"):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    marker = run_dir / "WEIGHTS_REMOVED"
    if run_dir.is_dir():
        marker.write_text("a better trial kept its weights; retrain with this run's config.yaml\n")


def _space_signature(space: SearchSpace) -> str:
    return json.dumps([[d.key, d.kind, list(d.args)] for d in space.dimensions])


def tune(
    config: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    trials: int = 20,
    study_name: str | None = None,
    storage: str | None = None,
    pruner: str = "median",
    pruner_startup: int = 3,
    sampler: str = "tpe",
    timeout: float | None = None,
    seeds: int = 1,
    progress: Any = None,
) -> TuneResult:
    """Run (or resume) the study of ``config``'s search space until ``trials`` trials have finished."""
    import optuna
    from optuna.trial import TrialState

    say = progress or (lambda _m: None)
    if trials < 1:
        raise ConfigError(f"--trials {trials}: at least 1")
    space = parse_file(config)
    for item in overrides:
        cfgmod.apply_override(space.base, item)
    quiet_optuna()
    first = cfgmod.from_dict(space.config_for({d.key: d.corners()[0] for d in space.dimensions}))
    must_have_selection(first)
    metric = first.train.metric
    direction = "minimize" if metric == "loss" else "maximize"
    name = study_name or Path(config).stem
    folder = study_folder(first.output_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    study = _open_study(name, url, space, metric, direction, _sampler(sampler, first.train.seed, trials),
                        _pruner(pruner, pruner_startup))  # fmt: skip
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = max(0, trials - done)
    if remaining:
        say(f"study {name}: {done} trial(s) finished, running {remaining} more (storage {url})")
        study.optimize(
            Objective(study, space, folder / "runs", metric, direction, say),
            n_trials=remaining,
            timeout=timeout,
            catch=(TrainingDiverged,),
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
        )
    else:
        say(f"study {name}: all {trials} trial(s) already finished")
    result = summarize_study(study, space, folder, url, metric, direction, remaining)
    if seeds > 1 and result.best is not None:
        from tunesmith.tuning.seeds import run_seeds

        result.seeds = run_seeds(
            cfgmod.from_dict(space.config_for(result.best["params"])), seeds, folder / "best-seeds", progress
        )
    from tunesmith.tuning.report import write_report

    result.report = write_report(study, result)
    return result


def must_have_selection(cfg: cfgmod.Config) -> None:
    """A search ranks its trials on the selection split; where the training data is too small to carve one, the
    only figures left are the validation data's, which the search must not choose on. Said before anything is
    written."""
    from tunesmith.data.split import MIN_FOR_SELECTION
    from tunesmith.pipeline.finetune import validate

    report = validate(cfg)
    if cfg.data.selection_split > 0 and report.no_selection:
        raise InputError(
            f"{cfg.data.train}: a search ranks its trials on a selection split carved from the training data, and "
            f"{report.no_selection}; give more training examples (at least {MIN_FOR_SELECTION}, and more than 3 in "
            "some class), or set data.selection_split: 0 to rank on the validation data knowingly"
        )


def quiet_optuna() -> None:
    """Optuna flags its own experimental and soon-changed APIs on every study; the search's lines speak for it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna(\.|$)")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _open_study(name: str, url: str, space: SearchSpace, metric: str, direction: str, sampler: Any, pruner: Any):
    """The study, created or loaded; refused when it was started with another search space. Trials cut short by
    an interruption are queued to run again first, with the same values."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=_storage(url), sampler=sampler, pruner=pruner, direction=direction,
        load_if_exists=True,
    )  # fmt: skip
    signature = _space_signature(space)
    stored = study.user_attrs.get("search_space")
    if stored is None:
        study.set_user_attr("search_space", signature)
        study.set_user_attr("metric", metric)
        study.set_user_attr("config", json.dumps(space.base))
    elif stored != signature:
        raise ConfigError(
            f"study {name!r} in {url} was started with another search space; give this search a new --study name"
        )
    requeued = set(study.user_attrs.get("requeued", []))
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("interrupted") and t.number not in requeued:
            study.enqueue_trial(t.params, skip_if_exists=False)
            requeued.add(t.number)
    study.set_user_attr("requeued", sorted(requeued))
    return study


class Objective:
    """One trial: train the suggested config as a normal run, report each evaluation to the pruner, keep the
    weights of the best trial only."""

    def __init__(self, study: Any, space: SearchSpace, runs: Path, metric: str, direction: str, say: Any):
        self.study, self.space, self.runs, self.metric, self.say = study, space, runs, metric, say
        self.minimize = direction == "minimize"

    def __call__(self, trial: Any) -> float:
        import optuna

        from tunesmith.config import coerce
        from tunesmith.pipeline.finetune import finetune
        from tunesmith.train.loop import Interrupted

        values = {d.key: d.suggest(trial) for d in self.space.dimensions}
        run_dir = self.runs / f"trial-{trial.number:04d}"
        shutil.rmtree(run_dir, ignore_errors=True)
        trial.set_user_attr("run", str(run_dir))
        seen: list[float] = []
        self.say(f"trial {trial.number}: " + ", ".join(_setting(k, v) for k, v in values.items()))
        try:
            run = finetune(coerce(self.space.config_for(values)), run_dir=run_dir, on_eval=self._reporter(trial, seen))
        except _Pruned as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            trial.set_user_attr("pruned_at_step", int(exc.args[0]))
            self.say(f"trial {trial.number}: pruned at step {exc.args[0]} ({self.metric} {seen[-1]:.4f})")
            raise optuna.TrialPruned() from None
        except (Interrupted, KeyboardInterrupt):
            trial.set_user_attr("interrupted", True)
            raise
        except TrainingDiverged as exc:
            trial.set_user_attr("error", str(exc))
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        value = kept_score(run.manifest, self.metric, seen, self.minimize)
        if not math.isfinite(value):
            raise TrainingDiverged(f"trial {trial.number}: {self.metric} is {value}")
        from tunesmith.tuning.seeds import flatten_metrics

        trial.set_user_attr("metrics", {k: v for k, v in flatten_metrics(run.metrics).items() if "/" not in k})
        trial.set_user_attr("seconds", run.manifest.get("timings_s", {}).get("total"))
        baseline = ((run.manifest.get("fit") or {}).get("warm_start") or {}).get("head_only_validation") or {}
        if self.metric in baseline:  # the frozen encoder with a trained head: the general model, same split
            trial.set_user_attr("baseline", float(baseline[self.metric]))
        self._keep_best_weights(run_dir, value)
        self.say(f"trial {trial.number}: {self.metric} {value:.4f}")
        return value

    def _reporter(self, trial: Any, seen: list[float]) -> Any:
        def on_eval(record: dict[str, Any]) -> bool:
            value = float(record[self.metric])
            seen.append(value)
            trial.report(value, step=int(record["step"]))
            if trial.should_prune():
                raise _Pruned(record["step"])
            return False

        return on_eval

    def _keep_best_weights(self, run_dir: Path, value: float) -> None:
        try:
            best_before = self.study.best_trial
        except ValueError:
            return
        if best_before.value is not None and not (
            value < best_before.value if self.minimize else value > best_before.value
        ):
            _drop_weights(run_dir)
            return
        previous = Path(best_before.user_attrs.get("run", ""))
        if previous.is_dir() and previous.parent == self.runs:
            _drop_weights(previous)


def _setting(key: str, value: Any) -> str:
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def summarize_study(
    study: Any, space: SearchSpace, folder: Path, url: str, metric: str, direction: str, ran: int
) -> TuneResult:
    import optuna
    import yaml

    from tunesmith.files import atomic_write_bytes

    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": dict(t.params),
                "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                "pruned_at_step": t.user_attrs.get("pruned_at_step"),
                "run": t.user_attrs.get("run"),
                "error": t.user_attrs.get("error"),
                "baseline": t.user_attrs.get("baseline"),
                "intermediate": {int(k): v for k, v in t.intermediate_values.items()},
            }
        )
    keys = [d.key for d in space.dimensions]
    with (folder / "trials.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "state", metric, *keys, "seconds", "pruned_at_step", "run"])
        for r in rows:
            w.writerow(
                [r["number"], r["state"], r["value"], *[r["params"].get(k) for k in keys], r["seconds"],
                 r["pruned_at_step"], r["run"]]
            )  # fmt: skip
    best = None
    best_path = None
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if complete:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": dict(b.params), "run": b.user_attrs.get("run")}
        raw = space.config_for(dict(b.params))
        header = (
            f"# tunesmith tune: best of {len(rows)} trial(s) of study {study.study_name}\n"
            f"# trial {b.number}: selection-split {metric} {b.value:.4f}; run {b.user_attrs.get('run')}\n"
        )
        best_path = folder / "best.yaml"
        atomic_write_bytes(best_path, (header + yaml.safe_dump(raw, sort_keys=False)).encode())
    return TuneResult(folder, study.study_name, url, metric, direction, rows, best, best_path, None, ran)


def trials_table(result: TuneResult) -> str:
    keys = sorted({k for r in result.trials for k in r["params"]})
    head = ["", "trial", "state", result.metric, *keys, "seconds"]
    rows = []
    for r in result.trials:
        mark = "*" if result.best and r["number"] == result.best["number"] else ""
        cells = [mark, str(r["number"]), r["state"], f"{r['value']:.4f}" if r["value"] is not None else "-"]
        for k in keys:
            v = r["params"].get(k)
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v) if v is not None else "-")
        cells.append(str(r["seconds"]) if r["seconds"] is not None else "-")
        rows.append(cells)
    cells = [head, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    right = {1, 3, len(head) - 1} | {4 + i for i, k in enumerate(keys) if all(_numeric(c[4 + i]) for c in rows)}
    return "\n".join(
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in cells
    )


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def kept_score(manifest: dict[str, Any], metric: str, seen: list[float], minimize: bool) -> float:
    """A trial's value: the selection-split score of the model its run kept (the frozen head's, when fine-tuning
    did not beat it). Runs whose manifest predates that record fall back to the best evaluation seen."""
    selection = (manifest.get("fit") or {}).get("selection") or {}
    if metric in selection:
        return float(selection[metric])
    return min(seen) if minimize else max(seen)
