"""The Task contract: everything that differs between tasks, in one class per task folder.

``pipeline.finetune`` drives every task through these hooks, in this order::

    read -> load_preprocessor -> check_inputs          (every check done, nothing written yet)
         -> prepare -> build_model -> before_training  (baselines on the untouched pre-trained model)
         -> method.train(evaluator) -> finish          (report against the baselines)
         -> method.export(parity_check) -> manifest_extras

Hooks hand their results forward as values (``TaskData``, ``Prepared``): none relies on state another hook
left on the task. Optional hooks have working defaults here, so callers never probe with ``hasattr``. What the
planner, the store, serving and lifecycle need to know about a task is a class attribute or a method here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesmith.config import TASK_DEFAULTS, Config, Default
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import ConfigError
from tunesmith.methods.base import Judge, ParityCheck
from tunesmith.models.catalog import ModelSource
from tunesmith.registry import Registry
from tunesmith.tasks.pool import PoolKind
from tunesmith.train.result import FitResult

Metrics = dict[str, float]
Evaluate = Callable[[Any], Metrics]


@dataclass
class TaskData:
    """What ``read`` found: both splits, checked; the report; the data's fingerprint; the class names
    (classification) and the data format (generation)."""

    train: Examples
    val: Examples
    report: DataReport
    fingerprint: str
    labels: list[str] = field(default_factory=list)
    format: str | None = None
    select: Examples | None = None  # carved from the training data for the tool's own choices (data.selection_split)
    unlabelled: Examples | None = None  # training rows without a label: self-supervised pre-training only (tabular)

    @property
    def all_train(self) -> Examples:
        """The training data as the user gave it (the selection split put back): what the data checks read."""
        return self.train if self.select is None else self.train.concat(self.select)


@dataclass
class Prepared:
    """A task's training-ready data: items for fit(), their lengths, the collate function, and what the task
    needs later for evaluation. Tasks extend it with typed fields of their own."""

    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]
    lengths: list[int] | None  # per training item, for length-grouped batches; None: plain shuffled batches
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    pad_id: int
    input_size: int  # max_length in tokens, or the side of a square image
    data: TaskData
    select_items: list[dict[str, Any]] | None = None  # the selection split (data.selection_split), when carved

    @property
    def choice_items(self) -> list[dict[str, Any]]:
        """What the tool's own choices are made on: the selection split, else the validation data."""
        return self.select_items if self.select_items is not None else self.val_items


class Task:
    """Base of every task. Subclasses set the class facts and implement the hooks that have no default."""

    name: ClassVar[str]
    # From the task folder's defaults.yaml (the config reads the same file): see __init_subclass__.
    default_model: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]  # allowed methods, the default first
    metrics: ClassVar[tuple[str, ...]]  # allowed selection metrics, the default first
    lora_dropout: ClassVar[float]
    peft_task_type: ClassVar[str | None] = None
    unit: ClassVar[str] = "examples"  # what one example is called in messages ("rows", "images")
    # glibc mmap threshold while training: big activations under it are fresh mmaps and page faults.
    # 16 MiB: on a 2-core machine without bf16, MiniLM steps of 8 x 128 tokens took 1.05 s at 1 MiB and 0.95 s at
    # 16-64 MiB (the lower threshold saved ~190 MB of peak memory where it cost no speed, on a bf16 machine).
    mmap_threshold: ClassVar[int] = 16 << 20
    # Facts for the data-driven defaults and the planner (docs/planning.md).
    epoch_rule: ClassVar[tuple[int, int, int]] = (100, 1, 5)  # optimizer steps to aim for; min, max epochs
    batch_sizes: ClassVar[tuple[int, ...]] = (8, 16, 32)  # what the batch-size rule picks from (docs/defaults.md)
    learning_rates: ClassVar[dict[str, list[tuple[float, float]]]] = {}  # method -> [(max params, lr), ...]
    lr_reference_batch: ClassVar[dict[str, int]] = {}  # method -> the batch its rates are for (sqrt-scaled)
    lora_targets_per_layer: ClassVar[int] = 2  # adapted matrices per block (memory estimate)
    vocabulary_logits: ClassVar[bool] = False  # the training forward computes logits over the vocabulary
    default_image_size: ClassVar[int] = 0
    generates_at_evaluation: ClassVar[bool] = False  # evaluation answers held-out prompts (eval.generate_examples)
    gate_metric: ClassVar[str] = "accuracy"  # what the promotion gate compares per example
    gate_lower_is_better: ClassVar[bool] = False
    # How label-next and learn read this task's unlabelled pools and embed them (tasks/pool.py); None: the task
    # has no pool (no classes to be unsure between, or no frozen features to spread picks over).
    pool: ClassVar[PoolKind | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = TASK_DEFAULTS.get(cls.name)
        if spec is None:
            raise TypeError(f"task {cls.name!r}: its folder needs a defaults.yaml naming it (see docs/design.md)")
        cls.default_model, cls.methods, cls.metrics = spec["model"], spec["methods"], spec["metrics"]
        cls.lora_dropout = spec["lora_dropout"]

    def __init__(self, cfg: Config):
        self.cfg = cfg

    # --- reading and checking (nothing is written before these pass) ----------------------------------
    def read(self) -> TaskData:
        """Read and check both splits; raise DataError with every fatal problem."""
        raise NotImplementedError

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Any:
        """What turns raw inputs into model inputs: a tokenizer, or an image preprocessing."""
        raise NotImplementedError

    def save_preprocessor(self, preprocessor: Any, folder: Path) -> None:
        """Save the preprocessor beside exported weights, so plain transformers can load the folder."""
        preprocessor.save_pretrained(folder)

    def check_inputs(self, preprocessor: Any, data: TaskData) -> int:
        """Input statistics into the report; returns the input size (max tokens, or the image side)."""
        raise NotImplementedError

    def bill_tokens(self, report: DataReport, cfg: Config) -> None:
        """Training tokens x epochs where a task bills tokens, once the epochs are known."""

    def open_defaults(self, cfg: Config, source: ModelSource, data: TaskData) -> list[Default]:
        """Values for task keys the config left open that follow the model or the data (classifier.pooling: auto,
        augment.enabled)."""
        return []

    # --- training ------------------------------------------------------------------------------
    def prepare(self, preprocessor: Any, data: TaskData, input_size: int) -> Prepared:
        raise NotImplementedError

    def build_model(self, source: ModelSource, data: TaskData) -> Any:
        raise NotImplementedError

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        raise NotImplementedError

    def before_training(self, model: Any, prep: Prepared, source: ModelSource, main: bool) -> Any:
        """Baselines measured on the untouched pre-trained model (None where there are none)."""
        return None

    def method_features(self, baseline: Any) -> Callable[[], tuple[np.ndarray, np.ndarray]] | None:
        """Cached frozen features (train, validation) for methods that train on them; None without."""
        return None

    def method_encoder(self, prep: Prepared, baseline: Any) -> Callable[[Any], tuple[np.ndarray, np.ndarray]] | None:
        """A model's current (train, validation) features, for methods that fit a head after changing the
        encoder (contrastive); None without."""
        return None

    def untouched_choice(self, baseline: Any) -> dict[str, float] | None:
        """The pre-trained model's own figures on the selection split, where it is a model the run could keep as it
        is (an encoder whose embeddings are the output); fine-tuning must beat them. None: no such candidate."""
        return None

    def untouched_judge(self, prep: Prepared) -> Judge | None:
        """What holds the trained model against ``untouched_choice`` when the training evaluator's figures are not
        what the report judges (a causal LM's written answers); None: the evaluator's best figures."""
        return None

    def embed(self, model: Any, batch: dict[str, Any]) -> Any:
        """The embedding of each input in a batch (what the head reads), for contrastive training."""
        raise ConfigError(f"method: contrastive needs sentence embeddings; {self.name} has none")

    def feature_head(self, model: Any) -> Any:
        """The module that maps frozen features to logits (head method, warm start)."""
        raise ConfigError(f"method: head and warm_start_head apply to classification; {self.name} has no head")

    def lora_targets(self, model: Any) -> list[str] | None:
        return None  # PEFT's default for the architecture

    def lora_modules_to_save(self, model: Any) -> list[str] | None:
        return None

    def evaluator(self, prep: Prepared) -> Evaluate:
        raise NotImplementedError

    def probability_metrics(self, y: np.ndarray, probs: np.ndarray, labels: list[str]) -> Metrics:
        """What a classifier's choices are made on, from class probabilities: the evaluator's figures, also for
        the head fitted on cached features (methods/head.py)."""
        from tunesmith.eval.metrics import classification_metrics

        m = classification_metrics(y, probs, labels)
        return {"loss": m["loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    # --- after training ---------------------------------------------------------------------------
    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Prepared, baseline: Any, report: DataReport, fit: FitResult
    ) -> dict[str, Any]:
        """Evaluate against the baselines and write the report; returns ``{"summary": metrics, ...}``."""
        raise NotImplementedError

    def parity_check(self, prep: Prepared) -> ParityCheck:
        """What an export (a LoRA merge) must reproduce on golden held-out examples."""
        raise NotImplementedError

    def manifest_extras(self, prep: Prepared) -> dict[str, Any]:
        return {}

    @staticmethod
    def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
        return [f"report: {Path(run_dir) / 'report.html'}"]

    # --- facts for the planner and the defaults ------------------------------------------------------
    @classmethod
    def learning_rate_for(cls, method: str, params: int) -> float | None:
        rules = cls.learning_rates.get(method)
        if rules is None:
            return None
        return next(v for bound, v in rules if params <= bound)

    @classmethod
    def default_method(cls, n_train: int, classes: int = 2) -> tuple[str, str]:
        """The method a config that names none gets for this much training data (``classes``: how many labels it
        has, where the task has labels), and why."""
        return cls.methods[0], f"the {cls.name} default"

    @classmethod
    def method_preference(cls, n_train: int, classes: int = 2) -> tuple[list[str], str]:
        """Methods in the order the planner tries them for this much data, and why."""
        return list(cls.methods), f"{cls.name}: {', '.join(cls.methods)}"

    @classmethod
    def activation_bytes(cls, input_size: int) -> int | None:
        """Bytes one training example keeps for the backward pass, where the task's model is not a transformer
        (the memory estimate's formula is for transformers); None: that formula."""
        return None

    def training_lengths(self, preprocessor: Any, data: TaskData, input_size: int) -> dict[str, list[int]]:
        """Each example's tokens as the run will see them (cut at the input size), per split; {} without tokens."""
        return {}

    def row_capacity(self, input_size: int) -> int | None:
        """Tokens per packed training row, or None where each example is its own row (planner's positions)."""
        return None

    def data_files(self, path: Path) -> list[Path]:
        """Files a data path stands for beyond itself (images named by a listing): kept with a version."""
        return []


TASKS: Registry[type[Task]] = Registry("task")
