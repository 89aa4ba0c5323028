"""Labels that look wrong: out-of-fold probabilities from a linear model on the frozen pre-trained features
(cached, so the check costs one feature pass and a few seconds of logistic regression), then confident learning
(cleanlab's ``find_label_issues``) ranks the training examples most likely mislabelled.

Why frozen features and not the fine-tuned model: a model trained on an example has learned its label, right or
wrong; out-of-fold predictions from a model that never saw the example are what confident learning needs, and
k fine-tuning runs would cost k times a training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith import config as cfgmod
from tunesmith.errors import ConfigError, InputError
from tunesmith.files import write_csv
from tunesmith.runtime import small_blas

FILTER = "prune_by_noise_rate"  # cleanlab's rule for how many to flag (bench/bench_check_labels.py compares them)


@dataclass
class Suspect:
    file: str
    line: int
    example: str  # the text, or the image's source
    label: str
    suggested: str
    label_probability: float  # out-of-fold probability of the given label
    suggested_probability: float


@dataclass
class LabelCheck:
    examples: int
    folds: int
    labels: list[str]
    suspects: list[Suspect] = field(default_factory=list)
    accuracy: float = 0.0  # out-of-fold accuracy of the frozen-feature model: how much to trust the suggestions
    features: str = ""

    def write_csv(self, path: str | Path) -> Path:
        out = Path(path)
        if out.exists() and out.is_dir():
            raise InputError(f"{out}: is a folder; give a file name for the suspects (CSV)")
        rows = [
            [
                s.file,
                s.line,
                s.example,
                s.label,
                s.suggested,
                f"{s.label_probability:.4f}",
                f"{s.suggested_probability:.4f}",
            ]
            for s in self.suspects
        ]
        header = ["file", "line", "example", "label", "suggested", "label_probability", "suggested_probability"]
        write_csv(out, header, rows)
        return out


def load_config(run_or_config: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> cfgmod.Config:
    """A run directory's resolved config (its data and base model), or a config file."""
    path = Path(run_or_config)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise InputError(f"{path}: not a tunesmith run directory (no config.yaml) and not a config file")
        return cfgmod.load(path / "config.yaml", overrides)
    return cfgmod.load(path, overrides)


def check_labels(
    run_or_config: str | Path | cfgmod.Config, folds: int = 5, overrides: list[str] | tuple[str, ...] = ()
) -> LabelCheck:
    """Every training example scored out of fold; the suspects ranked most likely mislabelled first."""
    from cleanlab.filter import find_label_issues

    from tunesmith.pipeline.finetune import check
    from tunesmith.runtime import quiet_libraries, set_threads
    from tunesmith.tasks.classification import FrozenFeatures

    cfg = run_or_config if isinstance(run_or_config, cfgmod.Config) else load_config(run_or_config, overrides)
    if folds < 2:
        raise ConfigError(f"--folds {folds}: at least 2")
    set_threads(cfg.train.threads)
    quiet_libraries()
    c = check(cfg)
    prep = c.task.prepare(c.preprocessor, c.data, c.input_size)
    model = c.task.build_model(c.source, c.data)
    frozen = c.task.before_training(model, prep, c.source, True)
    if not isinstance(frozen, FrozenFeatures):
        raise ConfigError(f"check-labels: reads text or image classification runs; {cfg.task} is not supported")
    feats = frozen.get()
    x = np.concatenate([feats[s]["mean"] for s in ("train", "select") if s in feats])
    examples = c.data.all_train
    labels = c.data.labels
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[lab] for lab in examples.labels])
    smallest = int(np.bincount(y, minlength=len(labels)).min())
    k = min(folds, smallest)
    if k < 2:
        raise InputError(f"{cfg.data.train}: every class needs at least 2 examples for cross-validation")
    probs = out_of_fold(x, y, k, cfg.train.seed)
    ranked = find_label_issues(y, probs, filter_by=FILTER, return_indices_ranked_by="self_confidence", n_jobs=1)
    suspects = [
        Suspect(
            file=examples.source,
            line=examples.lines[i],
            example=_shown(examples.inputs[i]),
            label=labels[y[i]],
            suggested=labels[int(probs[i].argmax())],
            label_probability=float(probs[i, y[i]]),
            suggested_probability=float(probs[i].max()),
        )
        for i in ranked
    ]
    return LabelCheck(
        examples=len(y),
        folds=k,
        labels=labels,
        suspects=suspects,
        accuracy=float((probs.argmax(1) == y).mean()),
        features="mean-pooled last hidden state of the frozen pre-trained model",
    )


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Probabilities of each example from a logistic regression fitted on the other folds (stratified)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with small_blas():
        return cross_val_predict(model, x, y, cv=cv, method="predict_proba", n_jobs=1)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(getattr(value, "source", value))
