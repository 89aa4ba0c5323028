"""The Workspace: the dashboard's one object. Reads the runs under its folders, starts long work as background
jobs of the command line, keeps labelling queues and uploads in managed folders, and confines every path a
person gives to its folders."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

from tunesmith import config as cfgmod
from tunesmith.errors import InputError
from tunesmith.files import atomic_write_bytes, atomic_write_text
from tunesmith.rundir import new_run_dir, read_manifest
from tunesmith.store.names import check_alias, check_name, parse_ref
from tunesmith.workspace.compare import compare_runs
from tunesmith.workspace.jobs import Job, Jobs
from tunesmith.workspace.paths import Folders, safe_name
from tunesmith.workspace.playground import Playground
from tunesmith.workspace.progress import progress
from tunesmith.workspace.queue import LabelQueue
from tunesmith.workspace.runs import RunSummary, find_runs, is_run, summarise

# What a run page may show of a run's files, by name.
RUN_FILES = {"report.html": "text/html", "config.yaml": "text/plain", "manifest.json": "application/json",
             "data_report.json": "application/json", "README.md": "text/plain"}  # fmt: skip
UPLOAD_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".txt", ".md")
DATA_SUFFIXES = (".csv", ".jsonl", ".parquet")
POOL_SUFFIXES = (*DATA_SUFFIXES, ".npz")  # a labelling pool may also be an image array file (or a folder)
SKIP_DATA = {"runs", "node_modules", "__pycache__", "configs"}
EXPORTS = {"merge": "--merge", "onnx": "--onnx", "gguf": "--gguf"}


class Workspace:
    def __init__(self, folders: list[str | Path]):
        self.folders = Folders(folders)
        self.home = self.folders.home
        self.jobs = Jobs(self.home / ".tunesmith" / "jobs", self.home)
        self.playground = Playground()

    # --- runs ---------------------------------------------------------------------------------------------
    def runs(self) -> list[RunSummary]:
        found = [summarise(p, self.folders.shown(p)) for p in find_runs(self.folders.roots)]
        return sorted(found, key=lambda r: -r.started)

    def run_path(self, given: str) -> Path:
        path = self.folders.confine(given, "run")
        if not is_run(path):
            raise InputError(f"run: {given} is not a tunesmith run directory")
        return path

    def run(self, given: str) -> RunSummary:
        path = self.run_path(given)
        return summarise(path, self.folders.shown(path))

    def progress(self, given: str) -> dict[str, Any]:
        return progress(self.run_path(given))

    def run_file(self, given: str, name: str) -> tuple[str, str]:
        """(text, media type) of one of a run's own documents (RUN_FILES); InputError for anything else."""
        if name not in RUN_FILES:
            raise InputError(f"file: {name!r}; a run page shows {', '.join(RUN_FILES)}")
        path = self.run_path(given) / name
        if not path.is_file():
            raise InputError(f"{name}: this run has none (yet)")
        return path.read_text(encoding="utf-8", errors="replace"), RUN_FILES[name]

    def compare(self, given: list[str]) -> dict[str, Any]:
        if len(given) < 2:
            raise InputError("compare: choose two or more runs")
        paths = [self.run_path(g) for g in given]
        return {"runs": [summarise(p, self.folders.shown(p), size=False) for p in paths], **compare_runs(paths)}

    # --- files ----------------------------------------------------------------------------------------------
    def upload(self, filename: str, data: bytes) -> Path:
        """Save an uploaded data file into ``uploads/`` (never over another file); returns its path."""
        name = safe_name(Path(filename or "").name, "upload")
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            raise InputError(f"upload: {name}: allowed kinds are {', '.join(UPLOAD_SUFFIXES)}")
        if not data:
            raise InputError(f"upload: {name} is empty")
        folder = self.folders.sub("uploads")
        path = folder / name
        if path.exists():
            path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        atomic_write_bytes(path, data)
        return path

    def data_files(self, limit: int = 500, suffixes: tuple[str, ...] = DATA_SUFFIXES) -> list[str]:
        """Data files under the workspace's folders a form may offer, uploads first (hidden folders, run
        directories and the workspace's own runs/ are not walked)."""
        out: list[str] = []
        for root in self.folders.roots:
            for base, dirs, files in os.walk(root):
                here = Path(base)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DATA
                                 and not is_run(here / d))  # fmt: skip
                out += [self.folders.shown(here / f) for f in sorted(files) if f.lower().endswith(suffixes)]
                if len(out) >= limit:
                    return sorted(out[:limit], key=lambda p: (not p.startswith("uploads/"), p))
        return sorted(out, key=lambda p: (not p.startswith("uploads/"), p))

    def write_config(self, raw: dict[str, Any], name: str) -> Path:
        """Validate a config a form built and write it to ``configs/NAME.yaml``; runs go to ``runs/``."""
        name = safe_name(name, "config name")
        raw = {**raw, "output_dir": str(self.folders.sub("runs"))}
        cfgmod.coerce(raw)  # ConfigError naming the key before anything is written
        path = self.folders.sub("configs") / f"{name}.yaml"
        atomic_write_text(path, yaml.safe_dump(raw, sort_keys=False))
        return path

    def config_path(self, given: str) -> Path:
        path = self.folders.confine(given, "config")
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise InputError(f"config: {given} is not a YAML file")
        return path

    # --- background work --------------------------------------------------------------------------------------
    def train(self, config: str, overrides: list[str] | tuple[str, ...] = ()) -> Job:
        """Train a config in the background, into a run folder named now (the page follows it from the start). A
        config that leaves the method open gets it from the data once read, so its folder says ``auto``."""
        path = self.config_path(config)
        cfg = cfgmod.coerce(path, list(overrides))
        run = new_run_dir(cfg.output_dir, cfg.task, "auto" if cfg.method_open else cfg.method)
        run = self.folders.confine(run if run.is_absolute() else self.home / run, "output_dir", must_exist=False)
        args = ["train", str(path), "--run-dir", str(run)]
        args += [x for o in overrides for x in ("--set", o)]
        return self.jobs.start("train", f"train {path.name}", args, run=run)

    def resume(self, given: str) -> Job:
        run = self.run_path(given)
        if not (run / "checkpoints").is_dir():
            raise InputError(f"{self.folders.shown(run)}: no checkpoints to resume from")
        return self.jobs.start("resume", f"resume {run.name}", ["train", str(run / "config.yaml"), "--resume",
                                                                    str(run)], run=run)  # fmt: skip

    def export(self, given: str, kind: str) -> Job:
        if kind not in EXPORTS:
            raise InputError(f"export: {kind!r}; choose {', '.join(EXPORTS)}")
        run = self.run_path(given)
        return self.jobs.start("export", f"export {kind} {run.name}", ["export", str(run), EXPORTS[kind]])

    def register(self, given: str, name: str, promote: str | None = None) -> Job:
        run = self.run_path(given)
        args = ["models", "register", str(run), "--name", check_name(name)]
        if promote:
            args += ["--promote", check_alias(promote)]
        return self.jobs.start("register", f"register {run.name} as {name}", args)

    def update(self, ref: str, data: str, alias: str | None = None) -> Job:
        path = self.folders.confine(data, "data")
        args = ["update", _ref(ref), "--data", str(path)] + (["--alias", check_alias(alias)] if alias else [])
        return self.jobs.start("update", f"update {ref} on {path.name}", args)

    def plan(self, config: str, budget: str | None = None) -> Job:
        """``tunesmith plan`` on a config in the background: every method the task allows, or only the one the
        config names (a person who chose a method asks what it costs), for the config's model or every catalog
        model of the task."""
        path = self.config_path(config)
        out = self.folders.sub("configs") / f"{path.stem}.plan.yaml"
        args = ["plan", str(path), "--json", "--out", str(out)] + (["--budget", budget] if budget else [])
        method = (cfgmod.read_config_yaml(path) or {}).get("method")
        if isinstance(method, str) and method:
            args += ["--methods", method]
        return self.jobs.start("plan", f"plan {path.name}", args, output=out)

    # --- labelling ---------------------------------------------------------------------------------------------
    def label_next(
        self, source: str, pool: str, k: int, name: str, strategy: str | None = None, near: float | None = None
    ) -> Job:
        """Pick ``k`` rows of ``pool`` for a person to label, scored by the run ``source`` (a run of a task that
        reads pools: text or image classification; ``strategy`` and ``near`` None: the task's own defaults); the
        queue fills when the job ends."""
        from tunesmith.labels.next import kind_of, pool_tasks

        run = self.run_path(source)
        pool_path = self.folders.confine(pool, "pool")
        made = read_manifest(run)
        try:
            kind = kind_of(str(made.get("task")))
        except cfgmod.ConfigError:
            raise InputError(f"label next: choose a finished run of {' or '.join(pool_tasks())}") from None
        if not 1 <= k <= 500:
            raise InputError("k: 1 to 500 rows")
        data = cfgmod.load(run / "config.yaml").data
        queue = LabelQueue(self.folders, name)
        queue.write_meta({
            "source": str(run), "pool": str(pool_path), "k": k, "strategy": strategy, "task": made["task"],
            "kind": kind.unit, "input_column": kind.input_column(data), "label_column": data.label_column,
            "label_names": data.label_names,
            "classes": [made["label_map"][str(i)] for i in range(len(made["label_map"]))],
            "train": str(self._data_path(run, data.train)), "config": str(run / "config.yaml"),
            "created": time.time(),
        })  # fmt: skip
        args = ["label-next", str(run), "--pool", str(pool_path), "--k", str(k), "--output", str(queue.csv)]
        if strategy:
            args += ["--strategy", strategy]
        if near is not None:
            args += ["--near", str(near)]
        job = self.jobs.start("label-next", f"label next: {k} rows of {pool_path.name}", args, output=queue.csv)
        queue.write_meta({**queue.meta, "job": job.id})
        return job

    def pool_files(self) -> list[str]:
        """Files a labelling pool may be: data files and image array files (a folder of images is typed)."""
        return self.data_files(suffixes=POOL_SUFFIXES)

    def labelling_runs(self) -> list[RunSummary]:
        """Finished runs whose model can score a pool for the labelling queue."""
        return [r for r in self.runs() if self.can_label(r)]

    def can_label(self, run: RunSummary) -> bool:
        """A finished run of a task that ranks pools (text or image classification)."""
        from tunesmith.labels.next import pool_tasks

        return run.status == "finished" and run.task in pool_tasks()

    def _data_path(self, run: Path, given: Any) -> Path:
        if not isinstance(given, str) or not given:
            raise InputError(f"{run}: its config names no data.train")
        path = Path(given)
        return path if path.is_absolute() else (self.home / path)

    def queue(self, name: str) -> LabelQueue:
        return LabelQueue(self.folders, name)

    def queues(self) -> list[str]:
        return LabelQueue.names(self.folders)

    def retrain(self, name: str) -> Job:
        """Train the source run's config again on its training data plus the rows labelled in the queue."""
        queue = self.queue(name)
        meta = queue.meta
        train, added = queue.training_file()
        config = self.folders.confine(meta["config"], "the source run's config")
        overrides = [f"data.train={train}", f"output_dir={self.folders.sub('runs')}"]
        job = self.train(str(config), overrides)
        queue.write_meta({**meta, "retrained": {"job": job.id, "run": job.run, "added": added}})
        return job

    # --- try it ------------------------------------------------------------------------------------------------
    def model_path(self, given: str) -> Path:
        """A run (inside the folders) or a registered version (NAME@REF, checked against its checksums)."""
        if "@" in given and "/" not in given:
            from tunesmith.store import resolve_run

            return resolve_run(given)  # checks the reference, then the files against their checksums
        return self.run_path(given)


def _ref(ref: str) -> str:
    """A registered version's reference, checked by the store's own rules before it reaches a command line."""
    parse_ref(ref)
    return ref
