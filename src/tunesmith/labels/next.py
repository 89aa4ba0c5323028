"""``label-next``: the pool examples whose labels would help most, from a finished run, a config's labelled
data, or (cold start) a model alone.

What scores the pool:
- a run: its own model's class probabilities (the model that will be retrained);
- a config: a logistic regression on the frozen pre-trained features of the config's labelled data (seconds;
  no training run needed);
- a model name or folder (no labels yet): nothing; the picks cover the pool's clusters (cold start).
Embeddings (for diversity and near-duplicates) are always the frozen pre-trained model's mean-pooled features,
cached by the pool's texts, so a loop that asks again and again embeds the pool once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith import config as cfgmod
from tunesmith.data.validate import normalise_label, sort_labels
from tunesmith.errors import ConfigError, InputError
from tunesmith.files import write_csv
from tunesmith.labels.check import load_config
from tunesmith.labels.pool import Pool, read_pool, same_text
from tunesmith.labels.select import NEAR, STRATEGIES, Pick, choose, unit
from tunesmith.tasks.text_classification.task import DEFAULT_LENGTH_CAP

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
    known_texts: set[str]
    known_emb: np.ndarray | None
    probs: Any  # Callable[[list[int]], np.ndarray] over pool rows, or None
    labels: list[str] | None
    scorer: str


def label_next(
    source: str | Path,
    pool_path: str | Path,
    k: int = 50,
    strategy: str = "diverse",
    seed: int = 0,
    text_column: str | None = None,
    label_column: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    at_most: bool = False,
    near: float = NEAR,
) -> Selection:
    """The k pool rows to label next (see the module's docstring for what ``source`` may be). ``at_most``:
    fewer when fewer are left, instead of an error."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy}: allowed: {', '.join(STRATEGIES)}")
    if k < 1:
        raise InputError(f"--k {k}: at least 1")
    if not 0 < near <= 1:
        raise InputError(f"--near {near}: a cosine similarity in (0, 1]; 1 sets aside exact twins only")
    kind, where = _source(source)
    cfg = None if kind == "model" else load_config(where, overrides)
    if cfg is not None and cfg.task != "text-classification":
        raise ConfigError(f"label-next: {cfg.task} runs are not supported yet (text classification only)")
    text_col = text_column or (cfg.data.text_column if cfg else "text")
    label_col = label_column or (cfg.data.label_column if cfg else "label")
    pool = read_pool(pool_path, text_col, label_col)
    scored = _score_run_or_config(cfg, kind, where, pool) if cfg is not None else _cold(str(where), pool)
    cands = pool.candidates(scored.known_texts)
    if scored.known_emb is not None and len(scored.known_emb) and cands:
        twin = _near_known(unit(scored.pool_emb[cands]), unit(scored.known_emb), near)
        if twin.any():
            pool.set_aside["near-duplicates of training examples"] = int(twin.sum())
            cands = [i for i, n in zip(cands, twin) if not n]
    if not cands:
        why = "; ".join(f"{n} {what}" for what, n in pool.set_aside.items()) or "no rows"
        raise InputError(f"{pool.path}: no row is left to label ({why})")
    if at_most:
        k = min(k, len(cands))
    if k > len(cands):
        why = "; ".join(f"{n} {what}" for what, n in pool.set_aside.items())
        raise InputError(
            f"--k {k}: the pool has only {len(cands)} row{'s' if len(cands) != 1 else ''} to pick from"
            + (f" (set aside: {why})" if why else "")
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


def embed_texts(
    model: Any, tokenizer: Any, texts: list[str], max_length: int, model_fp: str, cache: str | None
) -> np.ndarray:
    """Mean-pooled frozen features of texts, cached by the texts alone (not the labels beside them)."""
    from tunesmith.data.cache import ArrayCache, cache_key, cache_root
    from tunesmith.tasks.text_classification.task import frozen_features

    store = ArrayCache(cache_root(cache), "features")
    key = cache_key("pool-mean", model_fp, max_length, len(texts), *_digest(texts))
    hit = store.get(key)
    if hit is None:
        ids = tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        mean = frozen_features(model, [np.asarray(x) for x in ids], pad)["mean"]
        hit = {"mean": mean}
        store.put(key, hit)
    return hit["mean"]


def _digest(texts: list[str]) -> list[str]:
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    return [h.hexdigest()]


def load_encoder(spec: str, cache_dir: str | None, trust_remote_code: bool = False) -> tuple[Any, Any, str]:
    """The pre-trained encoder and tokenizer a config or run names (safetensors only), and its fingerprint."""
    from transformers import AutoModel, AutoTokenizer

    from tunesmith.models.catalog import resolve

    source = resolve(spec, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(source.path, use_safetensors=True, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer, source.fingerprint


def _cold(spec: str, pool: Pool) -> Scored:
    """No labels: embed the pool with the named model; picks cover its clusters."""
    model, tokenizer, fp = load_encoder(spec, None)
    emb = embed_texts(model, tokenizer, pool.texts, DEFAULT_LENGTH_CAP, fp, None)
    return Scored(emb, set(), None, None, None, f"no model yet: clusters of {spec}'s embeddings")


def _score_run_or_config(cfg: cfgmod.Config, kind: str, where: Path | str, pool: Pool) -> Scored:
    """The labelled examples are read as they are (a handful is enough: no split, no class-size checks) and
    embedded like the pool; the probabilities come from the run's model, else from a linear model on them."""
    from tunesmith.eval.compare import linear_probe
    from tunesmith.runtime import quiet_libraries, set_threads

    set_threads(cfg.train.threads)
    quiet_libraries()
    train = read_pool(cfg.data.train, pool.text_column, pool.label_column)
    have = [i for i, done in enumerate(train.labelled) if done]
    texts = [train.texts[i] for i in have]
    given = [str(normalise_label(train.rows[i][pool.label_column])) for i in have]
    model, tokenizer, fp = load_encoder(cfg.model, cfg.cache_dir, cfg.trust_remote_code)
    length = cfg.train.max_length or DEFAULT_LENGTH_CAP
    emb = embed_texts(model, tokenizer, pool.texts, length, fp, cfg.cache_dir)
    known_emb = embed_texts(model, tokenizer, texts, length, fp, cfg.cache_dir) if texts else None
    known = {same_text(t) for t in texts}
    del model
    if kind == "run":
        from tunesmith.inference import load as load_run

        predictor = load_run(Path(where), "torch")

        def from_run(rows: list[int]) -> np.ndarray:
            return predictor.predict_proba([pool.texts[i] for i in rows])

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
