"""The Method contract: what trains (all weights, the head, adapters) and what is saved.

A method reads only the resolved config (``job.cfg``: every key concrete) and asks the task for what differs
between tasks through ``TaskHooks``; fit(), the pipeline and the CLI never name a method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from tunesmith.config import Config, Default
from tunesmith.models.facts import ModelFacts
from tunesmith.registry import Registry
from tunesmith.train.result import FitResult


class TaskHooks(Protocol):
    """What a method asks of a task (tasks.base.Task implements it)."""

    peft_task_type: str | None
    mmap_threshold: int

    def loss(self, model: Any, batch: dict[str, Any]) -> Any: ...

    def feature_head(self, model: Any) -> Any: ...

    def lora_targets(self, model: Any) -> list[str] | None: ...

    def lora_modules_to_save(self, model: Any) -> list[str] | None: ...

    def embed(self, model: Any, batch: dict[str, Any]) -> Any: ...


@dataclass
class Judge:
    """How a run decides between the trained model and the untouched one when the training evaluator's figures
    are not what the report judges it by: a causal LM's selection loss falls while its written answers may not
    improve, so its answers to the selection split's prompts decide (``untouched`` holds the base model's)."""

    metric: str  # the figure both are held to, e.g. "token_f1" (higher is better)
    score: Callable[[Any], dict[str, float]]  # the trained model's figures on the selection split


@dataclass
class Job:
    """Everything a method needs to train one model."""

    cfg: Config  # resolved: every key concrete
    task: TaskHooks
    model: Any
    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]  # what choices are made on: the selection split, else the validation data
    lengths: list[int] | None
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    evaluate: Callable[[Any], dict[str, float]] | None  # None: no choices are made (``no_choice``)
    run_dir: Path | None
    resume: bool
    accelerator: Any
    labels: list[str]  # class names (classification), for the head's own evaluation
    features: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None  # cached frozen (train, choice) features
    encode: Callable[[Any], tuple[np.ndarray, np.ndarray]] | None = None  # a model's (train, choice) features now
    warm_start: FitResult | None = None  # a head fitted to frozen features before fine-tuning, if any
    on_eval: Callable[[dict[str, Any]], bool] | None = None  # after each evaluation; True stops (search pruning)
    rebuild: Callable[[], Any] | None = None  # a fresh pre-trained model (for keeping the frozen encoder's head)
    kept: dict[str, Any] | None = None  # which model the run keeps and why (fine_tune's comparison)
    groups: list[str] | None = None  # data.group_column's value per training item (cross-validation folds)
    untouched: dict[str, float] | None = None  # the pre-trained model's selection figures (tasks without a head)
    judge: Judge | None = None  # what holds the trained model against ``untouched``; None: the evaluator's best
    held_items: list[dict[str, Any]] | None = None  # the selection split when it was carved from the training data
    held_groups: list[str] | None = None  # its data.group_column values, where the data has groups
    # Why the run makes no choices (no early stopping, best step, kept model or tie-break): the training data was
    # too small to carve a selection split, and choices are never made on the validation data it reports on.
    no_choice: str | None = None


@dataclass
class ParityCheck:
    """How a task proves two models behave alike on golden held-out examples: ``run(model)`` gives what the
    model outputs (probabilities, greedy token ids), ``compare(before, after)`` gives (same enough, figures)."""

    run: Callable[[Any], Any]
    compare: Callable[[Any, Any], tuple[bool, dict[str, Any]]]
    what: str  # e.g. "probabilities", "greedy outputs"


class Method:
    """Base of every method."""

    name: ClassVar[str]
    keeps_activations: ClassVar[bool] = True  # trains through the model's forward (False: on cached features)
    trains_encoder: ClassVar[bool] = False  # the pre-trained weights themselves train (full, contrastive)
    epochs_key: ClassVar[str] = "train.epochs"  # the key that sets how long it trains
    epoch_rule: ClassVar[tuple[int, int, int] | None] = None  # (optimizer steps, fewest, most epochs); None: the task's
    batch_sizes: ClassVar[tuple[int, ...] | None] = None  # what the batch-size rule picks from; None: the task's
    batch_rule: ClassVar[str | None] = None  # why, in the run's record, where the method has its own sizes

    def default_learning_rate(self, cfg: Config) -> float | None:
        """The learning rate when neither the config nor a data-driven rule gives one (None: a rule must)."""
        return None

    def open_defaults(self, cfg: Config, n_train: int) -> list[Default]:
        """Data-driven values for this method's own keys that the config left open."""
        return []

    def trainable_params(self, facts: ModelFacts, lora_r: int, classes: int, targets_per_layer: int) -> int:
        """Parameters that get gradients and optimizer state (memory estimate)."""
        return facts.params

    def describe(self, cfg: Config) -> list[str]:
        """The method's settings in a few words each, for plans and summaries (a resolved config)."""
        return [f"{cfg.train.epochs} epochs", f"lr {cfg.train.learning_rate:g}"] + self._frozen(cfg)

    def _frozen(self, cfg: Config) -> list[str]:
        """What stays as pre-trained although the method trains the encoder (train.freeze_embeddings)."""
        return ["token embeddings frozen"] if cfg.train.freeze_embeddings and self.trains_encoder else []

    def train(self, job: Job) -> FitResult:
        raise NotImplementedError

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        raise NotImplementedError


def export_transformers(model: Any, folder: Path) -> dict[str, Any]:
    """Hugging Face format (safetensors), loadable by plain transformers."""
    model.save_pretrained(folder, safe_serialization=True)
    return {"format": "transformers", "path": folder.name}


METHODS: Registry[type[Method]] = Registry("method")
