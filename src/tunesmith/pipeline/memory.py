"""A first estimate of a run's peak memory from the model's shape, before anything is loaded.

It screens out options that cannot fit (so nobody tries them) and sizes micro-batches when the config leaves
``train.gradient_accumulation`` open. The planner's probe then measures the real peak.

peak = process + weights + gradients and AdamW state of what trains + activations of one micro-batch

- process: the Python process with torch and transformers loaded (measured at about 0.6 GiB on CPU);
- weights: 4 bytes a parameter (fp32);
- what trains: all parameters (full), the adapters (lora: two r-wide matrices per adapted linear layer), the
  head (head); each costs 4 (gradient) + 8 (AdamW moments) bytes;
- activations, transformers: per layer and token ``68 h + 10 a s`` bytes (the fp16 figure of Korthikanti et
  al., "Reducing Activation Recomputation in Large Transformer Models", doubled for fp32) plus the output
  logits of causal LMs; image models: 150 MB per 224x224 image (EfficientNet-Lite0, measured), scaled by area;
  a task whose model is not a transformer says its own (``Task.activation_bytes``).
  The head method trains on cached features: no activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.methods import get_method
from tunesmith.models.facts import ModelFacts
from tunesmith.tasks import get_task

PROCESS_BYTES = 600 << 20
IMAGE_ACTIVATION_BYTES = 150 << 20  # one 224x224 image through EfficientNet-Lite0, with what backward keeps


@dataclass(frozen=True)
class MemoryEstimate:
    process: int
    weights: int
    training_state: int
    activations_per_example: int

    def peak(self, micro_batch: int) -> int:
        return self.process + self.weights + self.training_state + micro_batch * self.activations_per_example


def trainable_params(
    facts: ModelFacts, task: str, method: str, lora_r: int, classes: int = 2, frozen_embeddings: bool = False
) -> int:
    """Weights with gradients and optimizer state; ``frozen_embeddings`` (train.freeze_embeddings) takes the
    token-embedding matrix (vocabulary x width) out where the method would train it."""
    how = get_method(method)
    count = how.trainable_params(facts, lora_r, classes, get_task(task).lora_targets_per_layer)
    if frozen_embeddings and how.trains_encoder:
        count -= facts.vocab * facts.hidden
    return max(count, 0)


def activation_bytes(facts: ModelFacts, task: str, method: str, seq: int) -> int:
    """Bytes one training example keeps for the backward pass."""
    how = get_method(method)
    if not how.keeps_activations:
        return 0
    if facts.is_image:
        return int(IMAGE_ACTIVATION_BYTES * (facts.image_size / 224) ** 2)
    own = get_task(task).activation_bytes(seq)
    if own is not None:  # a task whose model is no transformer (tables: an MLP)
        return own
    h, layers, heads = facts.hidden or 768, facts.layers or 12, facts.heads or 12
    per_layer = seq * (68 * h + 10 * heads * seq)
    logits = 2 * 4 * seq * facts.vocab if get_task(task).vocabulary_logits else 0
    return layers * per_layer + logits


def estimate(
    facts: ModelFacts,
    task: str,
    method: str,
    seq: int,
    lora_r: int = 8,
    classes: int = 2,
    frozen_embeddings: bool = False,
) -> MemoryEstimate:
    trainable = trainable_params(facts, task, method, lora_r, classes, frozen_embeddings)
    return MemoryEstimate(
        process=PROCESS_BYTES,
        weights=4 * facts.params,
        training_state=12 * trainable,
        activations_per_example=activation_bytes(facts, task, method, seq),
    )


def micro_batches(est: MemoryEstimate, batch_size: int, budget: int, share: float = 0.8) -> int:
    """Fewest micro-batches (gradient accumulation) whose peak stays under ``share`` of ``budget``; the batch
    size the optimizer sees does not change. 1 when even one example per micro-batch does not fit (the
    planner marks that option instead)."""
    for accumulation in range(1, batch_size + 1):
        micro = -(-batch_size // accumulation)
        if est.peak(micro) <= share * budget:
            return accumulation
    return 1
