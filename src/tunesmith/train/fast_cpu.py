"""CPU fast paths for training: cheaper dropout masks and bf16 autocast where the processor has bf16 dot products.

Profiling MiniLM training on a 2-core AVX512-BF16 machine: with bf16 autocast, drawing dropout masks
(``bernoulli_``, one 32-bit random number per element) took ~21% of each step. Here a mask element is a
16-bit slice of a 64-bit random word, three per draw, compared with round(p * 65536): the same
Bernoulli(1 - p) keep distribution up to a 1/65536 rounding of p, about three times cheaper to draw, stored as
bool. Attention-probability dropout, inside transformers' attention call, gets the same treatment through
the AttentionInterface registry; at inference (no dropout) the fused SDPA kernel is used unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

ATTENTION_NAME = "tunesmith_cpu"


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    # random_() fills int64 with values in [0, 2**63): the low 48 bits are uniform, the top 16 are not.
    words = torch.empty(((n + 2) // 3,), dtype=torch.int64, device=device).random_()
    threshold = round(p * 65536) - 32768  # each slice is uniform on [-32768, 32767]
    keep = words.view(torch.int16).view(-1, 4)[:, :3] >= threshold  # compare first: no copy of the bits
    return keep.reshape(-1)[:n].view(shape)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    mask = keep_mask(x.shape, p, x.device)
    return torch.where(mask, x * (1.0 / (1.0 - p)), torch.zeros((), dtype=x.dtype, device=x.device))


class FastDropout(torch.nn.Module):
    """Drop-in for nn.Dropout (same ``p``, same train/eval behaviour)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def cpu_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or query.device.type != "cpu" or getattr(module, "is_causal", False):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask.to(scores.dtype)
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout, True)
    out = torch.matmul(probs, value)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, cpu_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


def speed_up_for_cpu_training(model: torch.nn.Module) -> int:
    """Swap nn.Dropout for FastDropout and route sdpa attention through cpu_attention. Returns modules swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
                swapped += 1
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
        _register()
        for sub in [config, *(getattr(config, k) for k in ("text_config",) if hasattr(config, k))]:
            sub._attn_implementation = ATTENTION_NAME
    return swapped


def restore_standard_modules(model: torch.nn.Module) -> None:
    """Before export: plain nn.Dropout and sdpa, so the saved model needs nothing from tunesmith."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FastDropout):
                setattr(parent, name, torch.nn.Dropout(child.p))
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == ATTENTION_NAME:
        config._attn_implementation = "sdpa"


def return_freed_memory_to_the_system(threshold: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold at 1 MiB. By default the threshold rises as large blocks are freed, so that
    activation buffers end up in the heap and freed ones stay resident: on MiniLM training this held ~190 MB
    more at the peak, at the same speed (a 256 KiB threshold cost a quarter of the throughput)."""
    import ctypes

    m_mmap_threshold = -3
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, threshold))
    except (OSError, AttributeError):  # not glibc
        return False


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 matrix kernels here (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
