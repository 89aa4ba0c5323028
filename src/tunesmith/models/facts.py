"""What the planner knows about a model before loading it: parameter count and shape, read from files."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from tunesmith.models.catalog import CATALOG, ModelSource


@dataclass(frozen=True)
class ModelFacts:
    params: int
    hidden: int = 0
    layers: int = 0
    heads: int = 0
    vocab: int = 0
    image_size: int = 0  # image models: side of the square input

    @property
    def is_image(self) -> bool:
        return self.image_size > 0


def _parse_count(text: str) -> int:
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}
    text = text.strip().upper()
    return int(float(text[:-1]) * scale[text[-1]]) if text[-1:] in scale else int(float(text))


def _safetensors_params(path: Path) -> int:
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in info["shape"]:
            count *= d
        total += count
    return total


def count_params(folder: Path) -> int:
    """Parameters in a Hugging Face folder's weights: exact from safetensors headers, else bytes / 4."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return sum(_safetensors_params(f) for f in files)
    weights = [f for pattern in ("*.bin", "*.pt", "*.pth") for f in folder.glob(pattern)]
    return sum(f.stat().st_size for f in weights) // 4


def model_facts(source: ModelSource, default_image_size: int = 0) -> ModelFacts:
    """Shape and size of a model from its files; ``default_image_size`` for image models without one in config."""
    path = Path(source.path)
    config = {}
    if path.is_dir() and (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if source.catalog:
        params = _parse_count(CATALOG[source.catalog].params)
    elif path.is_dir():
        params = count_params(path)
    else:
        params = path.stat().st_size // 4 if path.is_file() else 0
    text = config.get("text_config", config)
    return ModelFacts(
        params=params,
        hidden=int(text.get("hidden_size") or text.get("d_model") or 0),
        layers=int(text.get("num_hidden_layers") or text.get("n_layer") or 0),
        heads=int(text.get("num_attention_heads") or text.get("n_head") or 0),
        vocab=int(text.get("vocab_size") or 0),
        image_size=int(config.get("image_size") or default_image_size),
    )
