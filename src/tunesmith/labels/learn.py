"""``learn``: the active-learning loop, for users who hold labels for a trial of the method and for benchmarks.

Round 0 trains on the config's own training data; every later round asks ``label_next`` for k pool rows using the
last round's model, reveals their labels from the pool's oracle column, and trains again. Every round is an
ordinary tunesmith run (any method) measured on the config's fixed validation data, so the learning curve (labels
against validation accuracy, with the runs' bootstrap intervals) compares like with like.

Texts and images alike: the task's ``PoolKind`` (tasks/pool.py) reads the pool and writes each round's training
data (a CSV of texts; a listing beside PNG copies of the images). Reused between rounds: the pool's embeddings
(cached by its content, computed once) and every cache a run keeps (token ids, resized pixels, frozen features of
unchanged splits). A class revealed once waits for its second example before it
joins training (one example cannot be split into training and selection data); the round record counts it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError, InputError, Problem
from tunesmith.files import write_json
from tunesmith.labels.check import load_config
from tunesmith.labels.next import kind_of, pick
from tunesmith.labels.select import STRATEGIES
from tunesmith.tasks.pool import Pool, PoolKind


@dataclass
class Round:
    round: int
    labels: int  # labelled examples trained on
    accuracy: float
    accuracy_ci: list[float]
    macro_f1: float
    run: str
    strategy: str = ""
    picked: int = 0  # pool rows revealed before this round's training
    waiting: int = 0  # revealed rows of a class seen once, not trained on yet
    seconds: float = 0.0
    started_from: str = "the pre-trained model"  # or the previous round's weights (warm), or why not


@dataclass
class LearnResult:
    folder: Path
    strategy: str
    k: int
    pool: str
    validation: str
    n_validation: int
    rounds: list[Round] = field(default_factory=list)
    baseline: list[Round] = field(default_factory=list)  # the same loop with random picks, when asked
    stopped: str = "completed"
    baseline_stopped: str = ""

    @property
    def report_html(self) -> Path:
        return self.folder / "report.html"

    def summary(self) -> str:
        from tunesmith.labels.report import summary

        return summary(self)


def learn(
    config: str | Path,
    pool_path: str | Path,
    rounds: int,
    k: int,
    oracle_column: str = "label",
    strategy: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    on_round: Any = None,
    baseline: bool = False,
    near: float | None = None,
    warm: bool = False,
) -> LearnResult:
    """Train, pick k, reveal, retrain, ``rounds`` times; with ``baseline`` the same loop again with random picks,
    for comparison; with ``warm`` every round after the first starts from the previous round's trained weights
    (see ``warm_start``). Writes every round's run, learning_curve.json and report.html."""
    from tunesmith.labels.report import write_report

    if rounds < 1:
        raise InputError(f"--rounds {rounds}: at least 1")
    if k < 1:
        raise InputError(f"--k {k}: at least 1")
    if strategy is not None and strategy not in STRATEGIES:
        raise InputError(f"--strategy {strategy}: allowed: {', '.join(STRATEGIES)}")
    cfg = load_config(config, overrides)
    pool_kind = kind_of(cfg.task)
    strategy = strategy or pool_kind.default_strategy
    near = pool_kind.default_near if near is None else near
    if cfg.data.validation is None:
        raise InputError(
            f"{config}: learn needs data.validation, one fixed held-out file that every round is measured on"
        )
    columns = (pool_kind.input_column(cfg.data), cfg.data.label_column)
    start = pool_kind.read(cfg.data.train, *columns, cfg.data.label_names)
    seed_rows = [(x, str(lab)) for x, lab in zip(start.inputs, start.labels) if lab is not None]
    oracle = pool_kind.read(pool_path, columns[0], oracle_column, cfg.data.label_names)
    missing = [ln for ln, lab in zip(oracle.lines, oracle.labels) if lab is None]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            [
                Problem(
                    "error", "missing_label", f"no oracle label (lines {shown})", oracle.path, missing[0], oracle_column
                )
            ]
        )
    truth = [str(lab) for lab in oracle.labels]
    folder = Path(out) if out else Path(cfg.output_dir) / f"learn-{time.strftime('%Y%m%d-%H%M%S')}-{strategy}"
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"--out {folder}: exists and is not empty; give a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    result = LearnResult(folder, strategy, k, oracle.path, str(cfg.data.validation), 0)
    loop = _Loop(config, overrides, folder, pool_kind, seed_rows, oracle, truth, columns, k, seed, near, on_round, warm)
    result.stopped = loop.run(strategy, rounds, result.rounds, result)
    if baseline and strategy != "random":
        result.baseline_stopped = loop.run("random", rounds, result.baseline, result)
    _save(result)
    write_report(result)
    return result


@dataclass
class _Loop:
    config: str | Path
    overrides: list[str] | tuple[str, ...]
    folder: Path
    pool_kind: PoolKind
    seed_rows: list[tuple[Any, str]]  # the config's labelled training examples: (input, label)
    oracle: Pool
    truth: list[str]
    columns: tuple[str, str]
    k: int
    seed: int
    near: float
    on_round: Any
    warm: bool = False

    def run(self, strategy: str, rounds: int, out: list[Round], result: LearnResult) -> str:
        from tunesmith.pipeline.finetune import finetune

        where = self.folder / strategy
        revealed: list[int] = []
        picked = 0
        previous: Path | None = None
        for r in range(rounds + 1):
            seen = Counter(lab for _, lab in self.seed_rows) + Counter(self.truth[i] for i in revealed)
            joined = [i for i in revealed if seen[self.truth[i]] >= 2]
            rows = self.seed_rows + [(self.oracle.inputs[i], self.truth[i]) for i in joined]
            train = self.pool_kind.write_training(
                where / f"round-{r:02d}", [x for x, _ in rows], [y for _, y in rows], *self.columns
            )
            start = time.monotonic()
            sets = [*self.overrides, f"data.train={train}", f"output_dir={where / 'runs'}"]
            started_from = "the pre-trained model"
            if self.warm and previous is not None:
                more, started_from = warm_start(previous, {y for _, y in rows})
                sets += more
            run = finetune(load_config(self.config, sets))
            previous = run.path
            m = run.metrics
            result.n_validation = int(m["n"])
            out.append(
                Round(
                    round=r,
                    labels=len(rows),
                    accuracy=float(m["accuracy"]),
                    accuracy_ci=[float(v) for v in m["accuracy_ci"]],
                    macro_f1=float(m["macro_f1"]),
                    run=str(run.path),
                    strategy=strategy,
                    picked=picked,
                    waiting=len(revealed) - len(joined),
                    seconds=round(time.monotonic() - start, 1),
                    started_from=started_from,
                )
            )
            _save(result)
            if self.on_round is not None:
                self.on_round(out[-1])
            if r == rounds:
                return "completed"
            shown = set(revealed)
            asked = self.oracle.with_labels([self.truth[i] if i in shown else None for i in range(len(self.truth))])
            try:
                sel = pick(
                    asked, self.pool_kind, load_config(run.path), "run", run.path, self.k, strategy, self.seed + r,
                    at_most=True, near=self.near,
                )  # fmt: skip
            except InputError:
                return "the pool has no row left to label"
            revealed += sel.indices
            picked = len(sel.indices)
        return "completed"


def warm_start(previous: Path, classes: set[str]) -> tuple[list[str], str]:
    """Config overrides that start a round from the previous round's trained weights, and what it starts from.
    A LoRA run's adapter goes on the same base model; a run that saved whole weights in a Hugging Face folder is
    the new model, its head kept (the class order is pinned to the previous round's). Cold instead, saying why,
    when a class is new (the head's shape changes), when the previous round trained no encoder weights (the head
    method: its frozen features are already reused from the cache) or saved a form no run can start from."""
    from tunesmith.inference.weights import base_model_path, inside_run
    from tunesmith.models.catalog import is_model_folder
    from tunesmith.rundir import read_manifest
    from tunesmith.tasks.classification import label_list

    manifest = read_manifest(previous)
    names = label_list(manifest["label_map"])
    if set(names) != classes:
        return [], "the pre-trained model (a class is new this round)"
    if manifest.get("method") == "head":
        return [], "the pre-trained model (the head method trains no encoder weights)"
    export = manifest.get("export") or {}
    order = f"data.label_names={json.dumps(names)}"
    if export.get("adapter"):
        adapter = inside_run(previous, export["adapter"], "export.adapter")
        return [
            f"model={base_model_path(manifest)}",
            f"lora.init_adapter={adapter}",
            order,
        ], "the previous round's adapter"
    folder = inside_run(previous, export.get("path"), "export.path")
    if not is_model_folder(folder):
        return [], "the pre-trained model (no run can start from the form the previous round's weights were saved in)"
    return [f"model={folder}", order], "the previous round's weights"


def _save(result: LearnResult) -> None:
    data = asdict(result)
    data["folder"] = str(result.folder)
    write_json(result.folder / "learning_curve.json", data)
