"""What a training run gives back (no torch: methods, the pipeline and reports read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FitResult:
    steps: int = 0
    epochs_run: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    kept: dict[str, Any] | None = None  # which model the run keeps and why (methods/training.py), when it chose
    best_step: int = 0
    warm_start: dict[str, Any] | None = None  # the warm-started head's selection record, when there was one
    metric: str | None = None  # what decided "best": the one train.metric, named in reports and by tune
    stopped: str = "completed"
    train_seconds: float = 0.0
    step_seconds: float = 0.0  # forward, backward and optimizer only: what throughput is measured on
    samples: int = 0
    tokens: int = 0  # real (non-padding) tokens trained on
    positions: int = 0  # token positions computed, padding included
    resumed_from: str | None = None
    precision: str = "fp32"
    refit: dict[str, Any] | None = None  # the linear head fitted again on training + selection rows, after the choices
    frozen: list[str] = field(default_factory=list)  # pre-trained weights kept as they were ("token embeddings ...")

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.step_seconds if self.step_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.step_seconds if self.step_seconds else 0.0

    @property
    def padding_share(self) -> float:
        """Share of computed positions that were padding."""
        return 1.0 - self.tokens / self.positions if self.positions else 0.0
