"""``learn``: the active-learning loop, for users who hold labels for a trial of the method and for benchmarks.

Round 0 trains on the config's own training data; every later round asks ``label_next`` for k pool rows using the
last round's model, reveals their labels from the pool's oracle column, and trains again. Every round is an
ordinary tunesmith run (any method) measured on the config's fixed validation data, so the learning curve (labels
against validation accuracy, with the runs' bootstrap intervals) compares like with like.

Reused between rounds: the pool's embeddings (cached by its texts, computed once) and every cache a run keeps
(token ids, frozen features of unchanged splits). A class revealed once waits for its second example before it
joins training (one example cannot be split into training and selection data); the round record counts it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.data.validate import normalise_label
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.files import write_csv, write_json
from tunesmith.labels.check import load_config
from tunesmith.labels.next import label_next
from tunesmith.labels.pool import read_pool
from tunesmith.labels.select import NEAR, STRATEGIES


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
    strategy: str = "diverse",
    seed: int = 0,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    on_round: Any = None,
    baseline: bool = False,
    near: float = NEAR,
) -> LearnResult:
    """Train, pick k, reveal, retrain, ``rounds`` times; with ``baseline`` the same loop again with random picks,
    for comparison. Writes every round's run, learning_curve.json and report.html."""
    from tunesmith.labels.report import write_report

    if rounds < 1:
        raise InputError(f"--rounds {rounds}: at least 1")
    if k < 1:
        raise InputError(f"--k {k}: at least 1")
    if strategy not in STRATEGIES:
        raise InputError(f"--strategy {strategy}: allowed: {', '.join(STRATEGIES)}")
    cfg = load_config(config, overrides)
    if cfg.task != "text-classification":
        raise InputError(f"learn: {cfg.task} is not supported yet (text classification only)")
    if cfg.data.validation is None:
        raise InputError(
            f"{config}: learn needs data.validation, one fixed held-out file that every round is measured on"
        )
    text_col, label_col = cfg.data.text_column, cfg.data.label_column
    seed_rows = _labelled(cfg.data.train, text_col, label_col)
    oracle = read_pool(pool_path, text_col, oracle_column)
    missing = [ln for ln, done in zip(oracle.lines, oracle.labelled) if not done]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            [
                Problem(
                    "error", "missing_label", f"no oracle label (lines {shown})", oracle.path, missing[0], oracle_column
                )
            ]
        )
    truth = [str(normalise_label(r[oracle_column])) for r in oracle.rows]
    folder = Path(out) if out else Path(cfg.output_dir) / f"learn-{time.strftime('%Y%m%d-%H%M%S')}-{strategy}"
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"--out {folder}: exists and is not empty; give a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    result = LearnResult(folder, strategy, k, oracle.path, str(cfg.data.validation), 0)
    loop = _Loop(config, overrides, folder, seed_rows, oracle, truth, (text_col, label_col), k, seed, near, on_round)
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
    seed_rows: list[tuple[str, str]]
    oracle: Any
    truth: list[str]
    columns: tuple[str, str]
    k: int
    seed: int
    near: float
    on_round: Any

    def run(self, strategy: str, rounds: int, out: list[Round], result: LearnResult) -> str:
        from tunesmith.pipeline.finetune import finetune

        where = self.folder / strategy
        revealed: list[int] = []
        picked = 0
        text_col, label_col = self.columns
        for r in range(rounds + 1):
            seen = Counter(lab for _, lab in self.seed_rows) + Counter(self.truth[i] for i in revealed)
            joined = [i for i in revealed if seen[self.truth[i]] >= 2]
            train = where / f"round-{r:02d}" / "train.csv"
            rows = self.seed_rows + [(self.oracle.texts[i], self.truth[i]) for i in joined]
            _write(train, [text_col, label_col], rows)
            start = time.monotonic()
            sets = [*self.overrides, f"data.train={train}", f"output_dir={where / 'runs'}"]
            run = finetune(load_config(self.config, sets))
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
                )
            )
            _save(result)
            if self.on_round is not None:
                self.on_round(out[-1])
            if r == rounds:
                return "completed"
            work = where / "pool.csv"
            shown = set(revealed)
            _write(
                work,
                [text_col, label_col],
                [(t, self.truth[i] if i in shown else "") for i, t in enumerate(self.oracle.texts)],
            )
            try:
                sel = label_next(
                    run.path, work, self.k, strategy, self.seed + r, text_col, label_col, at_most=True, near=self.near
                )
            except InputError:
                return "the pool has no row left to label"
            revealed += sel.indices
            picked = len(sel.indices)
        return "completed"


def _labelled(path: str, text_col: str, label_col: str) -> list[tuple[str, str]]:
    rows = read_pool(path, text_col, label_col)
    return [(t, str(normalise_label(r[label_col]))) for t, r, done in zip(rows.texts, rows.rows, rows.labelled) if done]


def _write(path: Path, columns: list[str], rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, columns, rows)


def _save(result: LearnResult) -> None:
    data = asdict(result)
    data["folder"] = str(result.folder)
    write_json(result.folder / "learning_curve.json", data)
