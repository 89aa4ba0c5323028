"""``label-next``: the pool examples whose labels would help most, from a finished run, a config's labelled
data, or (cold start) a model alone. Texts and images alike: the task's ``PoolKind`` (tasks/pool.py) reads the pool
and embeds it; the picking here never looks inside an example.

What scores the pool:
- a run: its own model's class probabilities (the model that will be retrained);
- a config: a logistic regression on the frozen pre-trained features of the config's labelled data (seconds;
  no training run needed);
- a model name or folder (no labels yet): nothing; the picks cover the pool's clusters (cold start).
Embeddings (for diversity and near-duplicates) are always the frozen pre-trained model's features, cached by the
pool's content, so a loop that asks again and again embeds the pool once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith import config as cfgmod
from tunesmith.data.validate import sort_labels
from tunesmith.errors import ConfigError, InputError
from tunesmith.files import write_csv
from tunesmith.labels.check import load_config
from tunesmith.labels.select import NEAR, STRATEGIES, Pick, choose, unit
from tunesmith.tasks.pool import Pool, PoolKind

OUTPUT_COLUMNS = ("pool_line", "score", "reason")  # added after the pool's own columns


@dataclass
class Selection:
    pool: Pool
    strategy: str  # the one asked for, or "cold start"
    scorer: str  # what gave the probabilities
    picks: list[Pick]
    indices: list[int]  # pool rows, in pick order
    set_aside: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    shown_as: str = "example"  # what the terminal listing calls a row's input (text, image)

    @property
    def columns(self) -> list[str]:
        own = list(self.pool.columns)
        if self.pool.label_column not in own:
            own.append(self.pool.label_column)
        return own + [c for c in OUTPUT_COLUMNS if c not in own]

    def records(self) -> list[dict[str, Any]]:
        out = []
        for pick, i in zip(self.picks, self.indices):
            row = {c: self.pool.rows[i].get(c) for c in self.pool.columns}
            row[self.pool.label_column] = ""
            row.update(pool_line=self.pool.lines[i], score=f"{pick.score:.4f}", reason=pick.reason)
            out.append(row)
        return out

    def write_csv(self, path: str | Path) -> Path:
        out = Path(path)
        if out.is_dir():
            raise InputError(f"--output {out}: is a folder; give a file name (CSV)")
        columns = self.columns
        write_csv(out, columns, ([r.get(c) for c in columns] for r in self.records()))
        return out


@dataclass
class Scored:
    """What the source gives: embeddings of the pool, of the labelled data, and probabilities (None: cold)."""

    pool_emb: np.ndarray
    known_keys: set[str]
    known_emb: np.ndarray | None
    probs: Any  # Callable[[list[int]], np.ndarray] over pool rows, or None
    labels: list[str] | None
    scorer: str


def label_next(
    source: str | Path,
    pool_path: str | Path,
    k: int = 50,
    strategy: str | None = None,
    seed: int = 0,
    input_column: str | None = None,
    label_column: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    near: float | None = None,
) -> Selection:
    """The k pool rows to label next (see the module's docstring for what ``source`` may be). ``input_column``:
    the pool's text column (text) or path column (an image listing); by default the config's. ``strategy`` and
    ``near``: by default the task's (``PoolKind.default_strategy``, ``default_near``)."""
    _check_asked(k, strategy or STRATEGIES[0], NEAR if near is None else near)
    kind, where = _source(source)
    cfg = None if kind == "model" else load_config(where, overrides)
    pool_kind = kind_of(cfg.task if cfg is not None else model_task(str(where)))
    strategy = strategy or pool_kind.default_strategy
    near = pool_kind.default_near if near is None else near
    in_col = input_column or (pool_kind.input_column(cfg.data) if cfg else pool_kind.default_input)
    label_col = label_column or (cfg.data.label_column if cfg else "label")
    pool = pool_kind.read(pool_path, in_col, label_col, cfg.data.label_names if cfg else None)
    return pick(pool, pool_kind, cfg, kind, where, k, strategy, seed, near=near)


def pick(
    pool: Pool,
    pool_kind: PoolKind,
    cfg: cfgmod.Config | None,
    kind: str,
    where: Path | str,
    k: int,
    strategy: str,
    seed: int,
    at_most: bool = False,
    near: float = NEAR,
) -> Selection:
    """The k rows of a read pool to label next, scored by a run (``kind`` "run"), a config's labelled data
    ("config") or nothing ("model": cold start). ``at_most``: fewer when fewer are left, instead of an error."""
    _check_asked(k, strategy, near)
    if cfg is not None:
        scored = _score_run_or_config(cfg, pool_kind, kind, where, pool)
    else:
        scored = _cold(str(where), pool_kind, pool)
    cands = pool.candidates(scored.known_keys)
    if scored.known_emb is not None and len(scored.known_emb) and cands:
        twin = _near_known(unit(scored.pool_emb[cands]), unit(scored.known_emb), near)
        if twin.any():
            pool.set_aside["near-duplicates of training examples"] = int(twin.sum())
            cands = [i for i, n in zip(cands, twin) if not n]
    if not cands:
        why = "; ".join(f"{n} {what}" for what, n in pool.set_aside.items()) or "no rows"
        raise InputError(f"{pool.path}: no {pool.unit[:-1]} is left to label ({why})")
    if at_most:
        k = min(k, len(cands))
    if k > len(cands):
        why = "; ".join(f"{n} {what}" for what, n in pool.set_aside.items())
        raise InputError(
            f"--k {k}: the pool has only {len(cands)} {pool.unit if len(cands) != 1 else pool.unit[:-1]} to pick "
            "from" + (f" (set aside: {why})" if why else "")
        )
    probs = scored.probs(cands) if scored.probs is not None else None
    picks = choose(strategy, k, scored.pool_emb[cands], probs, scored.labels, seed, near)
    return Selection(
        pool=pool,
        strategy=strategy if probs is not None else "cold start",
        scorer=scored.scorer,
        picks=picks,
        indices=[cands[p.index] for p in picks],
        set_aside=dict(pool.set_aside),
        candidates=len(cands),
        shown_as=pool_kind.shown_as,
    )


def _check_asked(k: int, strategy: str, near: float) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy}: allowed: {', '.join(STRATEGIES)}")
    if k < 1:
        raise InputError(f"--k {k}: at least 1")
    if not 0 < near <= 1:
        raise InputError(f"--near {near}: a cosine similarity in (0, 1]; 1 sets aside exact twins only")


def kind_of(task: str) -> PoolKind:
    """The task's pool reader; ConfigError for a task that has none."""
    from tunesmith.tasks import get_task

    pool_kind = get_task(task).pool
    if pool_kind is None:
        raise ConfigError(
            f"label-next and learn: {task} has no pool of examples to rank; they work for {', '.join(pool_tasks())}"
        )
    return pool_kind


def pool_tasks() -> list[str]:
    """The tasks whose runs can rank a pool of unlabelled examples (a ``Task.pool``)."""
    from tunesmith.tasks import get_task, task_names

    return [name for name in task_names() if get_task(name).pool is not None]


def model_task(spec: str) -> str:
    """The task a bare model serves (cold start): the catalog says; a folder with an image processor and no
    tokenizer holds an image model; anything else is read as a text encoder."""
    from tunesmith.models.catalog import CATALOG

    if spec in CATALOG:
        return CATALOG[spec].task
    folder = Path(spec)
    tokenizer = any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"))
    return (
        "image-classification"
        if (folder / "preprocessor_config.json").is_file() and not tokenizer
        else ("text-classification")
    )


def _source(source: str | Path) -> tuple[str, Path | str]:
    """("run", dir) | ("config", file) | ("model", spec): what the first argument names."""
    p = Path(source)
    if p.is_file():
        return "config", p
    if p.is_dir():
        if (p / "config.yaml").is_file():
            return "run", p
        if (p / "config.json").is_file():
            return "model", str(p)
        raise InputError(f"{p}: not a run directory (no config.yaml) nor a model folder (no config.json)")
    from tunesmith.models.catalog import CATALOG

    if str(source) in CATALOG:
        return "model", str(source)
    from tunesmith.store import resolve_run

    try:
        return "run", resolve_run(str(source))
    except InputError:
        names = ", ".join(sorted(CATALOG))
        raise InputError(
            f"{source}: not a run directory, a config file, a registered model or a catalog model ({names})"
        ) from None


def _near_known(pool_emb: np.ndarray, known: np.ndarray, near: float, chunk: int = 2048) -> np.ndarray:
    out = np.zeros(len(pool_emb), dtype=bool)
    for s in range(0, len(pool_emb), chunk):
        out[s : s + chunk] = (pool_emb[s : s + chunk] @ known.T).max(axis=1) >= near - 1e-6
    return out


def _cold(spec: str, pool_kind: PoolKind, pool: Pool) -> Scored:
    """No labels: embed the pool with the named model; picks cover its clusters."""
    emb = pool_kind.encoder(spec, None, False, None)(pool.inputs)
    return Scored(emb, set(), None, None, None, f"no model yet: clusters of {spec}'s embeddings")


def _score_run_or_config(cfg: cfgmod.Config, pool_kind: PoolKind, kind: str, where: Path | str, pool: Pool) -> Scored:
    """The labelled examples are read as they are (a handful is enough: no split, no class-size checks) and
    embedded like the pool; the probabilities come from the run's model, else from a linear model on them."""
    from tunesmith.eval.compare import linear_probe
    from tunesmith.runtime import quiet_libraries, set_threads

    set_threads(cfg.train.threads)
    quiet_libraries()
    # the training file is described by the config's columns, the pool by the options given for it
    train = pool_kind.read(
        cfg.data.train, pool_kind.input_column(cfg.data), cfg.data.label_column, cfg.data.label_names
    )
    have = [i for i, lab in enumerate(train.labels) if lab is not None]
    given = [str(train.labels[i]) for i in have]
    embed = pool_kind.encoder(cfg.model, cfg.cache_dir, cfg.trust_remote_code, cfg.train.max_length)
    emb = embed(pool.inputs)
    known_emb = embed([train.inputs[i] for i in have]) if have else None
    known = {train.keys[i] for i in have}
    if kind == "run":
        from tunesmith.inference import load as load_run

        predictor = load_run(Path(where), "torch")

        def from_run(rows: list[int]) -> np.ndarray:
            return predictor.predict_proba(pool_kind.predictable([pool.inputs[i] for i in rows]))

        return Scored(emb, known, known_emb, from_run, list(predictor.labels or []), f"the run {where}")
    labels = sort_labels(set(given), [*(cfg.data.label_names or []), *given])
    if len(labels) < 2 or known_emb is None:
        return Scored(emb, known, known_emb, None, None, f"no model yet: {len(labels)} class labelled")
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[lab] for lab in given])

    def from_probe(rows: list[int]) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():  # classes with one or two labels: cross-validation warns, and copes
            warnings.simplefilter("ignore")
            return linear_probe(known_emb, y, emb[rows], cfg.train.seed)[0]

    what = f"a linear model on {cfg.model}'s frozen features of {len(y)} labelled examples"
    return Scored(emb, known, known_emb, from_probe, labels, what)
