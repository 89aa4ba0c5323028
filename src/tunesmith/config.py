"""Typed, frozen config: YAML in, validated dataclasses out, resolved YAML back into each run.

Every field documents itself through ``metadata["help"]``; ``choices``, ``min`` and ``max`` in the
metadata are enforced at load time, and every error names the key's full path. This module does not
import torch, so ``tunesmith validate`` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import ConfigError
from tunesmith.files import read_yaml

# Whole numbers beyond this are refused for every key (a seed of 2**70 or 10**9 epochs is a slip, not a setting).
INT_LIMIT = 2**31 - 1
MAX_CONFIG_BYTES = 1 << 20


def _f(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Default:
    """A value chosen for a key the config left open, and why (written into the run's manifest)."""

    key: str
    value: int | float | str
    why: str

    def override(self) -> str:
        return f"{self.key}={self.value}"


def _task_defaults() -> dict[str, dict[str, Any]]:
    """What each task allows and picks when the config is silent, from its folder's ``defaults.yaml`` (data, so
    the config needs no task import; the Task classes read the same files)."""
    root = resources.files("tunesmith") / "tasks"
    out = {}
    for folder in sorted(root.iterdir(), key=lambda f: f.name):
        spec = folder / "defaults.yaml"
        if spec.is_file():
            raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
            out[raw["name"]] = {**raw, "methods": tuple(raw["methods"]), "metrics": tuple(raw["metrics"])}
    return out


TASK_DEFAULTS: dict[str, dict[str, Any]] = _task_defaults()


@dataclass(frozen=True)
class DataConfig:
    train: str = _f(
        help="training file, relative to the working directory (classification and tables: CSV, JSONL, a .json "
        "array, Parquet or a save_to_disk dataset folder; causal-lm: see data.format); or a Hugging Face Hub dataset, "
        "hf://OWNER/NAME (its train split) or hf://OWNER/NAME#SPLIT, loaded through datasets where a network exists "
        "or from its local cache"
    )
    validation: str | None = _f(None, help="validation file; without one a seeded (stratified) split is made")
    format: str = _f(
        "auto",
        help="causal-lm data: chat (OpenAI {messages}), sharegpt ({conversations: [{from, value}]}), alpaca "
        "({instruction, input, output}), conversational (TRL prompt/completion message lists), prompt-completion, "
        "or text ({text} rows, or .txt/.md documents separated by blank lines), as JSON lines, a .json array or a "
        "save_to_disk dataset folder; auto: told apart by the keys (docs/generation.md)",
        choices=("auto", "chat", "sharegpt", "alpaca", "conversational", "prompt-completion", "text"),
    )
    truncation: str = _f(
        "truncate",
        help="causal-lm: an example longer than train.max_length is cut to its first max_length tokens "
        "(truncate; dropped if no answer token is left) or left out (drop). Plain text is split into pieces",
        choices=("truncate", "drop"),
    )
    text_column: str = _f("text", help="column holding the input text")
    path_column: str = _f("path", help="image-classification: column of image paths (relative to the listing file)")
    label_names: list[str] | None = _f(
        None,
        help="the classes in id order: names for integer labels 0..k-1 (IDX / NumPy image arrays), e.g. [t-shirt, "
        "trouser, ...], and the saved ids of named labels. Default: numbers by value, names as they first appear",
    )
    label_column: str = _f("label", help="column holding the label (string or int)")
    group_column: str | None = _f(
        None,
        help="text classification: rows sharing this column's value (a page, a customer, a thread) stay together "
        "on one side of every split the tool makes (the held-out split, the selection split)",
    )
    replay: list[str] = _f(
        [],
        help="earlier training data mixed into training, in the training data's format (files or folders); "
        "`tunesmith update` fills it with the training data of every earlier version",
    )
    replay_exclude: str | None = _f(
        None,
        help="a JSON list of example fingerprints left out of replay (earlier evaluation sets, so that no "
        "held-out example is trained on); written by `tunesmith update`",
    )
    replay_ratio: float = _f(
        0.5,
        help="replayed examples per new training example (a seeded sample keeping the earlier data's class "
        "shares; capped by what the replay data holds); 0 turns replay off",
        min=0.0,
        max=10.0,
    )
    validation_split: float = _f(0.2, help="share held out when no validation file is given", min=0.01, max=0.9)
    selection_split: float = _f(
        0.15,
        help="share of the training data held out for the tool's own choices (early stopping, the best epoch, "
        "keeping the frozen encoder's head when fine-tuning does not beat it), so that the validation figures "
        "stay honest; 0: choices are made on the validation data (the report says so); training data too small to "
        "carve one (under 20 examples) gets a run that makes no choices and keeps the fine-tuned model",
        min=0.0,
        max=0.5,
    )
    max_selection_examples: int = _f(500, help="cap on the selection split's size", min=1)
    max_train_examples: int | None = _f(None, help="use at most this many training rows (stratified sample)", min=1)
    max_validation_examples: int | None = _f(None, help="use at most this many validation rows", min=1)
    min_examples_per_class: int = _f(2, help="fewer training examples of a class than this is fatal", min=1)
    warn_examples_per_class: int = _f(10, help="fewer training examples of a class than this is a warning", min=1)
    imbalance_warn_ratio: float = _f(5.0, help="warn when largest/smallest class count exceeds this", min=1.0)
    min_examples: int = _f(8, help="causal-lm: fewer usable training examples than this is fatal", min=1)
    categorical: list[str] | None = _f(
        None,
        help="tabular: the columns read as categories; default: detected (text columns, and whole-number columns "
        "with at most 20 distinct values)",
    )
    ignore: list[str] = _f([], help="tabular: columns left out of the features (besides the label)")
    time_column: str | None = _f(
        None,
        help="tabular: a date or time column; without a validation file the held-out split is the latest rows "
        "(no future leakage) instead of a stratified one; the column is not a feature",
    )
    positive_label: str | None = _f(
        None, help="tabular, two classes: the class to detect (fraud, default); default: the rarer class"
    )
    knowledge_base: str | None = _f(
        None,
        help="causal-lm: a knowledge base (name, folder, or registered NAME@vN; `tunesmith kb build`) whose retrieved "
        "chunks go into every question, in training (the chunk holding the answer among distractors, RAFT) and in "
        "use (answers come with their sources); embedding: the corpus searched at evaluation, besides the "
        "passages of the data",
    )
    query_column: str = _f("query", help="embedding: column (or JSON key) of the queries")
    passage_column: str = _f("passage", help="embedding: column (or JSON key) of the passage each query should find")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = _f(
        None,
        help="passes over the training data; default: follows the data size (about 100 optimizer steps for text "
        "classifiers, 1-5 epochs; 250 for images, 1-8; 1,000 for tables, 5-60; 80 for causal-lm, 1-4; 60 for "
        "embedding, 1-3; docs/planning.md)",
        min=1,
        max=10_000,
    )
    batch_size: int | None = _f(
        None,
        help="examples per optimizer step across all processes; default: follows the data size (8 to 32, so "
        "that small data still gets enough optimizer steps; docs/defaults.md)",
        min=1,
    )
    learning_rate: float | None = _f(
        None, help="peak learning rate; default: by method, model size and batch size (docs/planning.md)", gt=0.0
    )
    max_length: int | None = _f(
        None,
        help="tokens per example; default: the 98th percentile of the data's lengths, capped by cost (128 for "
        "classification, where longer inputs cost more than they add: docs/defaults.md) and by the model "
        "(2048 for causal-lm); images: the side of the square input in px, default the model's, or 5/7 of it for "
        "a convolutional model when most pictures are under a quarter of it (224 -> 160); tables: the feature "
        "columns (set by the data)",
        min=1,
    )
    packing: bool = _f(
        True,
        help="causal-lm: pack each batch's examples into rows of max(max_length, 256) tokens, without attention "
        "across examples, instead of padding each to the longest",
    )
    seed: int = _f(42, help="seed for data order, splits, initialisation and dropout", min=0, max=2**32 - 1)
    weight_decay: float = _f(0.01, help="AdamW weight decay (not applied to biases and norms)", min=0.0)
    warmup_ratio: float = _f(0.1, help="share of steps spent warming up the learning rate", min=0.0, max=1.0)
    scheduler: str = _f("linear", help="decay after warm-up", choices=("linear", "cosine", "constant"))
    gradient_accumulation: int | None = _f(
        None,
        help="micro-batches per optimizer step; default: the fewest whose estimated peak memory fits in 80% of "
        "the free memory (1 when it fits)",
        min=1,
    )
    max_grad_norm: float = _f(1.0, help="gradient clipping norm; 0 turns clipping off", min=0.0)
    precision: str = _f(
        "auto",
        help="auto: bf16 autocast where computed natively (bf16 GPUs, AVX512-BF16/AMX CPUs), else fp32",
        choices=("auto", "fp32", "bf16"),
    )
    eval_every: int = _f(0, help="evaluate every N optimizer steps; 0 = once per epoch", min=0)
    early_stopping_patience: int = _f(2, help="evaluations without improvement before stopping; 0 = off", min=0)
    metric: str | None = _f(
        None,
        help="selection metric that picks the best model; default macro_f1 (classification), loss (causal-lm), "
        "average_precision (tables), mrr_at_10 (embedding)",
        choices=("average_precision", "macro_f1", "accuracy", "loss", "mrr_at_10", "recall_at_5", "ndcg_at_10"),
    )
    checkpoint_every: int = _f(
        0,
        help="save a checkpoint every N optimizer steps; 0 = at the first evaluation after 5 minutes of training "
        "since the last one (short runs write none; an interrupted run always saves one)",
        min=0,
    )
    keep_checkpoints: int = _f(2, help="complete checkpoints kept on disk", min=1)
    group_by_length: bool = _f(True, help="batch examples of similar length together to cut padding")
    freeze_embeddings: bool | None = _f(
        None,
        help="keep the token-embedding matrix as pre-trained while the rest of the model trains (full and "
        "contrastive fine-tuning of text models); default: on for text-classification, where its optimizer "
        "update was a quarter of each MiniLM step on 2 CPU cores and accuracy held on the suite, off for "
        "causal-lm (often tied to the output layer) and embedding; images and tables have no such matrix "
        "(docs/defaults.md)",
    )
    freeze_batch_norm: bool = _f(
        True,
        help="models with batch norm: keep its pre-trained statistics while fine-tuning (small batches and "
        "slow running averages otherwise leave the statistics behind the weights; on Fashion-MNIST with "
        "EfficientNet-Lite0 accuracy fell each epoch without this)",
    )
    threads: int | None = _f(None, help="torch CPU threads; default: the cores available", min=1)
    report_to: list[str] | None = _f(
        None,
        help="experiment trackers beside the run's own log: tensorboard, mlflow ($MLFLOW_TRACKING_URI, else "
        "OUTPUT_DIR/mlruns), wandb ($WANDB_PROJECT; WANDB_MODE=offline needs no network); default: tensorboard "
        "where installed; [] for none",
        choices=("tensorboard", "mlflow", "wandb"),
    )
    max_steps: int | None = _f(None, help="stop after this many optimizer steps", min=1)


@dataclass(frozen=True)
class CostConfig:
    missed: float = _f(100.0, help="cost of one positive the model lets through", gt=0.0)
    false_alarm: float = _f(1.0, help="cost of one negative the model flags", gt=0.0)


@dataclass(frozen=True)
class EvalConfig:
    slice_columns: list[str] = _f([], help="columns whose values get their own metrics (a first bias check)")
    bootstrap: int = _f(1000, help="bootstrap resamples for confidence intervals", min=100)
    confidence: float = _f(0.95, help="confidence level of the intervals", min=0.5, max=0.999)
    probe: bool = _f(True, help="compare against a linear probe on the frozen pre-trained model")
    batch_size: int = _f(64, help="examples per batch at evaluation and prediction", min=1)
    generate_examples: int = _f(
        32, help="causal-lm: held-out prompts answered by the base and the tuned model (0 = none)", min=0
    )
    max_new_tokens: int = _f(128, help="causal-lm: longest generated answer at evaluation", min=1)
    exact_match: bool = _f(False, help="causal-lm: also score exact match of the normalised answer")
    cost: CostConfig = _f(
        None,
        help="tabular, two classes: the cost of one missed positive and of one false alarm; the decision threshold "
        "is the one with the lowest total cost on the selection split, saved with the model",
    )
    false_positive_rate: float = _f(
        0.01, help="tabular: the false-positive rate at which recall is reported", gt=0.0, max=0.5
    )
    top_k: int = _f(100, help="tabular: precision among the k highest-scored validation rows", min=1)
    fewer_labels: list[float] = _f(
        [0.1, 0.01],
        help="tabular: also train with only these shares of the training labels (unlabelled rows still "
        "pre-train) and compare with the same baselines; [] for none",
    )

    def __post_init__(self) -> None:
        if self.cost is None:
            object.__setattr__(self, "cost", CostConfig())
        for i, share in enumerate(self.fewer_labels):
            if not 0 < share < 1:
                raise ConfigError(f"eval.fewer_labels[{i}]: got {share!r}; allowed: a share between 0 and 1")


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool | None = _f(
        None,
        help="image-classification: augment training images (never validation); default: on, off when most "
        "training images are under a quarter of the model's input size (scaled-up thumbnails: Fashion-MNIST 85.6% "
        "without against 82.2% with, digits 95.8% against 94.0%; docs/defaults.md)",
    )
    crop_scale: float = _f(0.6, help="random resized crop: smallest share of the image area kept", min=0.05, max=1.0)
    flip: bool = _f(True, help="random horizontal flip")
    color_jitter: float = _f(0.1, help="random brightness and contrast change, +-share", min=0.0, max=0.9)


@dataclass(frozen=True)
class ClassifierOptions:
    pooling: str = _f(
        "auto",
        help="text-classification: how token vectors become one vector for the head: mean (attention-masked), "
        "cls (the first token, through the model's pooler where it has one), max; auto: the model's own "
        "sentence pooling where it declares one (sentence-transformers' 1_Pooling), else cls",
        choices=("auto", "mean", "cls", "max"),
    )
    hidden: list[int] = _f([], help="hidden layer widths of an MLP head, e.g. [256]; empty: one linear layer")
    dropout: float = _f(0.1, help="dropout before each layer of the head", min=0.0, max=0.9)
    keep_better: bool = _f(
        True,
        help="when fine-tuning does not beat the frozen encoder with a trained head (embedding: the pre-trained "
        "encoder as it is; causal-lm: the base model, by the token F1 of its answers to the selection prompts) on "
        "the selection split, keep the latter as the run's model (said at the top of the output and the report); "
        "false: keep the tuned one",
    )


@dataclass(frozen=True)
class FullOptions:
    warm_start_head: bool | None = _f(
        None,
        help="first fit the head on cached frozen features (seconds), then fine-tune everything from there "
        "(linear probing, then fine-tuning); default: on for classification (docs/defaults.md)",
    )


@dataclass(frozen=True)
class HeadOptions:
    epochs: int = _f(40, help="passes over the cached features (they are cheap)", min=1)
    learning_rate: float = _f(5e-3, help="learning rate of the head (train.learning_rate wins if set)", gt=0.0)


@dataclass(frozen=True)
class LoraOptions:
    r: int | None = _f(
        None, help="adapter rank; default: by training examples (4 under 1,000, 8 under 10,000, else 16)", min=1
    )
    alpha: int | None = _f(None, help="adapter scaling numerator (scale = alpha / r); default 2 r", min=1)
    dropout: float | None = _f(
        None,
        help="dropout on the adapter input; default 0.1 (classification), 0 (causal-lm: the masks cost a fifth of "
        "each SmolLM2 step on CPU, and LLM LoRA recipes commonly use 0-0.05)",
        min=0.0,
        max=0.9,
    )
    target_modules: list[str] | None = _f(
        None,
        help="module names to adapt; default: PEFT's choice for encoders (classification), every linear layer "
        "of the decoder blocks for causal-lm",
    )
    merge: bool = _f(False, help="also save the adapter merged into full weights")
    init_adapter: str | None = _f(
        None,
        help="continue training this saved adapter (a run's adapter folder) instead of starting new adapters; "
        "`tunesmith update` sets it for LoRA versions",
    )
    warm_start_head: bool | None = _f(
        None,
        help="first fit the head on cached frozen features, then train the adapters; default: on for classification",
    )


@dataclass(frozen=True)
class TabularOptions:
    pretrain_epochs: int | None = _f(
        None,
        help="passes of self-supervised pre-training over every row, labelled or not; default: about 2,000 "
        "steps, 5-100 epochs; 0 skips it (a model named by `model:` is then used as it is)",
        min=0,
        max=10_000,
    )
    corruption: float = _f(
        0.3, help="share of each row's features replaced by values of other rows in pre-training", gt=0.0, max=0.9
    )
    width: int = _f(256, help="width of the encoder's layers", min=8, max=8192)
    depth: int = _f(3, help="encoder layers", min=1, max=16)
    embedding_dim: int = _f(8, help="width of each categorical value's embedding", min=1, max=512)
    loss: str = _f(
        "weighted",
        help="fine-tuning loss: weighted (cross entropy with square-root inverse class-frequency weights; the "
        "probabilities are corrected back to the data's class shares), focal, or plain",
        choices=("weighted", "focal", "plain"),
    )
    focal_gamma: float = _f(2.0, help="focal loss: how much easy examples are down-weighted", min=0.0, max=10.0)


@dataclass(frozen=True)
class RetrievalOptions:
    k: int = _f(3, help="chunks retrieved into each question (data.knowledge_base)", min=1, max=20)
    oracle_share: float = _f(
        0.8,
        help="training questions whose chunks include the one holding the answer; the rest get distractors only",
        min=0.0,
        max=1.0,
    )
    without_answer: str = _f(
        "decline",
        help="what a training question whose chunks lack the answer is taught to say: decline (retrieval.decline, "
        "so the model says when the documents do not hold the answer) or answer (the reference answer, the RAFT "
        "paper's recipe)",
        choices=("decline", "answer"),
    )
    decline: str = _f(
        "The documents do not answer this question.", help="the answer taught where the chunks lack the answer"
    )
    min_overlap: float = _f(
        0.5,
        help="a chunk holds a training answer when it has at least this share of the answer's words (the chunk is "
        "found by searching with the answer)",
        gt=0.0,
        max=1.0,
    )


@dataclass(frozen=True)
class EmbeddingOptions:
    scale: float = _f(20.0, help="inverse temperature of the in-batch contrastive loss (cosine x scale)", gt=0.0)
    hard_negatives: int = _f(
        1,
        help="passages mined per training query with the pre-trained encoder (the most similar ones that are not "
        "its own) and added to the batch as negatives; 0: in-batch negatives only",
        min=0,
        max=8,
    )


@dataclass(frozen=True)
class Config:
    task: str = _f(
        "text-classification",
        help="what to learn: text-classification, image-classification, tabular-classification or causal-lm",
        choices=tuple(TASK_DEFAULTS),
    )
    model: str | None = _f(
        None,
        help="catalog name, local Hugging Face folder (or .gguf file), hub id, or a run folder (its base_model/, else "
        "its model/); default minilm-l6 (text classification), efficientnet-lite0 (images), smollm2-135m "
        "(causal-lm), tabular-net (tables), minilm-l6 (embedding)",
    )
    method: str | None = _f(
        None,
        help="what trains: full, head, lora, or contrastive (text: the sentence encoder on same/different-class pairs, "
        "then a head). Default: text contrastive under 200 training examples, or under 500 with 3 or more classes, "
        "else full; images and tables full; causal-lm lora",
        choices=("full", "head", "lora", "contrastive"),
    )
    trust_remote_code: bool = _f(False, help="allow model code shipped with the weights to run")
    chat_template: str | None = _f(
        None,
        help="causal-lm: the chat template for a base model without one (or to replace its own): plain (### User / "
        "### Assistant headings, answers ended by the end-of-sequence token; any vocabulary), chatml (needs "
        "<|im_start|> and <|im_end|> tokens), or a Jinja file; saved with the tokenizer",
    )
    output_dir: str = _f("runs", help="folder that receives one sub-folder per run")
    cache_dir: str | None = _f(None, help="cache for tokens, features and converted models; default ~/.cache/tunesmith")
    data: DataConfig = _f(None, help="data files and columns")
    train: TrainConfig = _f(None, help="training hyperparameters")
    eval: EvalConfig = _f(None, help="evaluation settings")
    augment: AugmentConfig = _f(None, help="training-image augmentation")
    classifier: ClassifierOptions = _f(None, help="classification: the head on the model and what the run keeps")
    full: FullOptions = _f(None, help="options of the full method")
    head: HeadOptions = _f(None, help="options of the head method")
    lora: LoraOptions = _f(None, help="options of the lora method")
    tabular: TabularOptions = _f(None, help="tabular-classification: the network, its pre-training and its loss")
    retrieval: RetrievalOptions = _f(None, help="causal-lm with data.knowledge_base: what each question is given")
    embedding: EmbeddingOptions = _f(None, help="embedding: the contrastive loss and its negatives")

    def __post_init__(self) -> None:
        # Sections left out of the YAML get their defaults; frozen, so set through object.
        for name, cls in _SECTIONS.items():
            if name != "data" and getattr(self, name) is None:
                object.__setattr__(self, name, cls())
        defaults = TASK_DEFAULTS[self.task]
        if self.model is None:
            object.__setattr__(self, "model", defaults["model"])
        # A method the config leaves open may still follow the data (Task.default_method, in pipeline.check).
        object.__setattr__(self, "method_open", self.method is None)
        if self.method is None:
            object.__setattr__(self, "method", defaults["methods"][0])
        if self.method not in defaults["methods"]:
            raise ConfigError(
                f"method: got {self.method!r}; allowed for task {self.task}: {', '.join(defaults['methods'])}"
            )
        if self.chat_template is not None and self.task != "causal-lm":
            raise ConfigError(f"chat_template: applies to causal-lm; this config's task is {self.task}")
        if self.lora.dropout is None:
            object.__setattr__(self, "lora", dataclasses.replace(self.lora, dropout=defaults["lora_dropout"]))
        if self.train.freeze_embeddings is None:
            frozen = bool(defaults.get("freeze_embeddings", False))
            object.__setattr__(self, "train", dataclasses.replace(self.train, freeze_embeddings=frozen))
        elif self.train.freeze_embeddings and "freeze_embeddings" not in defaults:
            having = ", ".join(name for name, spec in TASK_DEFAULTS.items() if "freeze_embeddings" in spec)
            raise ConfigError(
                f"train.freeze_embeddings: applies to models with a token-embedding matrix ({having}); task "
                f"{self.task} has none, so leave it out or set false"
            )
        if self.train.metric is None:
            object.__setattr__(self, "train", dataclasses.replace(self.train, metric=defaults["metrics"][0]))
        elif self.train.metric not in defaults["metrics"]:
            raise ConfigError(
                f"train.metric: got {self.train.metric!r}; allowed for task {self.task}: "
                f"{', '.join(defaults['metrics'])}"
            )

    @property
    def method_options(self) -> Any:
        return getattr(self, self.method)


_SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "augment": AugmentConfig}
_SECTIONS |= {"classifier": ClassifierOptions, "full": FullOptions}
_SECTIONS |= {"head": HeadOptions, "lora": LoraOptions, "tabular": TabularOptions}
_SECTIONS |= {"retrieval": RetrievalOptions, "embedding": EmbeddingOptions}


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        concrete = [a for a in args if a is not type(None)]
        for arg in concrete:
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                if len(concrete) == 1:  # "float or null": the float's own reason (e.g. not finite) says more
                    raise
                continue
        raise ConfigError(f"{path}: got {value!r}; allowed: {_type_name(tp)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: got {value!r}; allowed: {_type_name(tp)}")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML reads 5e-5 (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{path}: got {value!r}; allowed: a finite number")
            return number
    elif tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{path}: got {value!r}; allowed: {_type_name(tp)}")


def _check_range(value: Any, meta: dict, path: str) -> None:
    if value is None:
        return
    if "choices" in meta and isinstance(value, list):
        for i, item in enumerate(value):
            _check_range(item, meta, f"{path}[{i}]")
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{path}: got {value!r}; allowed: {', '.join(map(str, meta['choices']))}")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(f"{path}: got {value!r}; allowed: a number > {meta['gt']:g}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{path}: got {value!r}; allowed: a number >= {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{path}: got {value!r}; allowed: a number <= {meta['max']}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise ConfigError(f"{path}: got {value!r}; allowed: a whole number between {-INT_LIMIT} and {INT_LIMIT}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{path}: unknown key{did_you_mean(str(key), known)}; allowed keys here: "
                              + ", ".join(sorted(known)))  # fmt: skip
        if key in _SECTIONS and cls is Config:
            kwargs[key] = _build(_SECTIONS[key], value, f"{path}.")
            continue
        if _subsection(hints[key]) is not None:  # a mapping inside a section (eval.cost)
            kwargs[key] = _build(_subsection(hints[key]), value, f"{path}.")
            continue
        coerced = _coerce(value, hints[key], path)
        _check_range(coerced, dict(known[key].metadata), path)
        kwargs[key] = coerced
    missing = [
        f.name for f in known.values() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [m for m in missing if m not in kwargs]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: required key is missing")
    return cls(**kwargs)


def _subsection(tp: Any) -> type | None:
    """The dataclass a key of a section holds (``eval.cost``), else None."""
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set ``a.b`` in a plain config mapping, making the sections it needs; a non-section on the way is an error."""
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def flat_keys(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config mapping as ``{"a.b": value}`` (what a resumed run and a comparison of runs read key by key)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= flat_keys(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_override(raw: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
    key, text = item.split("=", 1)
    try:
        value = read_yaml(text) if text != "" else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item}: the value is not valid YAML ({_yaml_problem(exc)})") from None
    set_key(raw, key, value)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message in one line: what is wrong and where."""
    return " ".join(str(exc).split())


def did_you_mean(word: str, choices: Any) -> str:
    """' (did you mean X?)' for the closest of ``choices``, or nothing when none is close."""
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_override_key(key: str) -> None:
    """An unknown ``--set`` key is named as coming from --set, with the closest known key."""
    parts = key.strip().split(".")
    cls: Any = Config
    for i, part in enumerate(parts):
        known = {f.name for f in dataclasses.fields(cls)}
        if part not in known:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(
                f"--set {key}: {part!r} is not a key of {where}{did_you_mean(part, known)}; allowed there: "
                + ", ".join(sorted(known))
            )
        if cls is Config and part in _SECTIONS:
            cls = _SECTIONS[part]
        elif _subsection(typing.get_type_hints(cls)[part]) is not None:
            cls = _subsection(typing.get_type_hints(cls)[part])
        elif i < len(parts) - 1:
            raise ConfigError(f"--set {key}: {part} is not a section")


def from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a plain mapping (as read from YAML) plus ``a.b=value`` overrides into a Config."""
    raw = copy.deepcopy(raw or {})
    for item in overrides:
        if "=" in item:
            check_override_key(item.split("=", 1)[0])
        apply_override(raw, item)
    if "data" not in raw:
        raise ConfigError("data: required section is missing (at least data.train)")
    return _build(Config, raw, "")


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config file; errors name the file and the key path."""
    p = Path(path)
    raw = read_config_yaml(p)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    try:
        return from_dict(raw or {}, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def read_config_yaml(p: Path) -> Any:
    """The mapping in a YAML file a person wrote; ConfigError naming the file for what cannot be read."""
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; give the YAML config file inside it")
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size} bytes; a config file holds at most {MAX_CONFIG_BYTES}")
        return read_yaml(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{p}: cannot be read (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None


def coerce(config: Config | str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A Config from a Config, a plain mapping or a YAML path, with ``a.b=value`` overrides applied."""
    if isinstance(config, Config):
        return from_dict(to_dict(config), overrides) if overrides else config
    if isinstance(config, dict):
        return from_dict(config, overrides)
    return load(config, overrides)


def to_dict(cfg: Any) -> dict:
    out = dataclasses.asdict(cfg)
    return out


def dump(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key path, default, help) for every key: the config reference in docs comes from here."""
    rows = []
    for f in dataclasses.fields(cls):
        if cls is Config and f.name in _SECTIONS:
            rows.extend(describe(_SECTIONS[f.name], f"{f.name}."))
            continue
        sub = _subsection(typing.get_type_hints(cls)[f.name])
        if sub is not None:
            rows.extend(describe(sub, f"{prefix}{f.name}."))
            continue
        default = (
            "required"
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        )
        rows.append((prefix + f.name, repr(default), f.metadata.get("help", "")))
    return rows
