"""Image classification: defects, products, scans. The classification hooks (labels, baselines, report,
parity) are text classification's; what differs is reading images, preprocessing and the model."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.cache import ArrayCache, cache_key, cache_root
from tunesmith.data.images import check_images, read_images
from tunesmith.data.split import add_replay, limit_and_split
from tunesmith.data.validate import DataReport, Examples, check_labelled
from tunesmith.errors import DataError
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks import TASKS, Prepared
from tunesmith.tasks.text_classification import FrozenFeatures, TextClassification
from tunesmith.train import meter

GALLERY = 24


@TASKS.register("image-classification")
class ImageClassification(TextClassification):
    name = "image-classification"
    peft_task_type = None
    # 224x224 conv activations are tens of MB each: under fit()'s 1 MiB glibc mmap threshold every one was a
    # fresh mmap, and the Fashion-MNIST demo spent 5m49s of system time in page faults against 8m50s of user time.
    mmap_threshold = 64 << 20

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.preprocess: Any = None

    # --- data -------------------------------------------------------------------------------
    def _read_split(self, path: str, report: DataReport) -> tuple[Examples | None, str]:
        d = self.cfg.data
        return read_images(
            path, report, path_column=d.path_column, label_column=d.label_column,
            slice_columns=list(self.cfg.eval.slice_columns), label_names=d.label_names,
        )  # fmt: skip

    def read(self) -> tuple[Examples, Examples, DataReport, str]:
        d, report = self.cfg.data, DataReport()
        train, fp_train = self._read_split(d.train, report)
        val, fp_val = (None, "")
        if d.validation is not None:
            val, fp_val = self._read_split(d.validation, report)
        if train is not None and len(train):
            train, val = limit_and_split(train, val, d, self.cfg.train.seed, report, "images")
            train = add_replay(
                train, d, self.cfg.train.seed, report, lambda p: self._read_split(p, report)[0], "images"
            )
            self.labels = check_labelled(
                train, val, report, d.min_examples_per_class, d.warn_examples_per_class, d.imbalance_warn_ratio
            )
        elif train is not None and not report.errors:
            report.add("error", "empty_file", "no usable training images", d.train)
        if report.errors:
            raise DataError(report.problems)
        assert train is not None and val is not None
        return train, val, report, "+".join(f[:16] for f in (fp_train, fp_val) if f)

    def load_tokenizer(self, source: ModelSource) -> Any:
        """Images have no tokenizer: the model's preprocessing plays that part."""
        from tunesmith.vision import EFFICIENTNET, EFFICIENTNET_PREPROCESS, preprocess_from_processor

        self.preprocess = (
            EFFICIENTNET_PREPROCESS if source.catalog == EFFICIENTNET else preprocess_from_processor(source.path)
        )
        return self.preprocess

    def check_lengths(self, tokenizer: Any, train: Examples, val: Examples, report: DataReport) -> int:
        size = self.preprocess.size
        report.stats["images"] = {
            "train": check_images(train, size, report),
            "validation": check_images(val, size, report),
            "model_input": f"{size}x{size} RGB, (pixel - {self.preprocess.mean[0]:g}) / {self.preprocess.std[0]:g}",
        }
        return size

    def _pixels(self, ex: Examples, size: int, key: str) -> np.ndarray:
        """Every image resized once to the model's square input (uint8), cached by content and size."""
        from tunesmith.vision import resize_square

        cache = ArrayCache(cache_root(self.cfg.cache_dir), "images")
        ck = cache_key("pixels", key, size)
        hit = cache.get(ck)
        if hit is not None:
            return hit["pixels"]
        arr = (
            np.stack([resize_square(r.pixels, size) for r in ex.inputs])
            if len(ex)
            else np.zeros((0, 3, size, size), np.uint8)
        )
        cache.put(ck, {"pixels": arr})
        return arr

    # --- hooks ------------------------------------------------------------------------------
    def prepare(self, tokenizer: Any, train: Examples, val: Examples, max_length: int) -> Prepared:
        keys = (train.content_key(), val.content_key())
        size = self.preprocess.size
        tr, va = self._pixels(train, size, keys[0]), self._pixels(val, size, keys[1])
        index = {lab: i for i, lab in enumerate(self.labels)}
        train_items = [{"i": i, "labels": index[y]} for i, y in enumerate(train.labels)]
        val_items = [{"i": i, "labels": index[y]} for i, y in enumerate(val.labels)]
        extra = {"train_px": tr, "val_px": va, "keys": keys, "val": val, "max_length": size}
        return Prepared(train_items, val_items, None, self._train_collate(tr), 0, extra)

    def _train_collate(self, pixels: np.ndarray) -> Any:
        import torch

        from tunesmith.vision import augment

        a = self.cfg.augment
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        pre = self.preprocess

        def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
            x = torch.from_numpy(pixels[[it["i"] for it in items]]).float()
            if a.enabled:
                x = augment(x, a.crop_scale, a.flip, a.color_jitter, gen)
            x = pre.normalise(x).contiguous(memory_format=torch.channels_last)
            return {"pixel_values": x, "labels": torch.tensor([it["labels"] for it in items])}

        return collate

    def build_model(self, source: ModelSource) -> Any:
        import torch

        from tunesmith.vision import EFFICIENTNET, build_classifier

        kind = EFFICIENTNET if source.catalog == EFFICIENTNET else "transformers"
        model = build_classifier(source.path, kind, self.labels, self.cfg.trust_remote_code)
        if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            # Convolutions run faster channels-last on CPU (EfficientNet-Lite0 training: 9.3 -> 14.9 images/s
            # in fp32, 15.3 -> 17.7 in bf16); weights are saved in the standard layout.
            model = model.to(memory_format=torch.channels_last)
        return model

    def lora_targets(self, model: Any) -> list[str] | None:
        """Attention projections where the model has them (ViT-style query/value), else every 1x1 convolution
        of the blocks (PEFT wraps Conv2d too)."""
        import torch

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        if {"query", "value"} <= names:
            return ["query", "value"]
        if {"q_proj", "v_proj"} <= names:
            return ["q_proj", "v_proj"]
        convs = {
            n.rsplit(".", 1)[-1]
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
        }
        return sorted(convs) or None

    def lora_modules_to_save(self, model: Any) -> list[str]:
        """The new head, and batch-norm layers: their running statistics move while adapters train, so they
        are saved with the adapter (else base + adapter would be evaluated with statistics it never had)."""
        import torch

        head = model.head
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is head}
        names |= {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
        return sorted(names)

    @staticmethod
    def loss(model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(model(batch["pixel_values"]).float(), batch["labels"])

    @staticmethod
    def feature_head(model: Any) -> Any:
        return model.head

    def features(self, model: Any, ids: Any, pad_id: int) -> dict[str, np.ndarray]:
        from tunesmith.vision import run_batched

        feats = run_batched(model, ids, self.preprocess, lambda m, x: m.features(x))
        return {"first": feats, "mean": feats}

    def predict_proba(self, model: Any, ids: Any, pad_id: int, batch_size: int = 64) -> np.ndarray:

        from tunesmith.vision import probabilities

        return probabilities(model, ids, self.preprocess, batch_size)

    def before_training(self, model: Any, prep: Prepared, source: ModelSource, main: bool) -> Any:
        from tunesmith.api import release_memory

        x = prep.extra
        frozen = FrozenFeatures(
            self, model, source.fingerprint, x["keys"], x["max_length"], x["train_px"], x["val_px"], 0,
            self.cfg.cache_dir,
        )  # fmt: skip
        if self.cfg.eval.probe and main:
            frozen.get()
            release_memory()
        return frozen

    def evaluator(self, prep: Prepared) -> Any:
        prep.extra["val_ids"] = prep.extra["val_px"]  # what the shared classification evaluator predicts on
        return super().evaluator(prep)

    def finish(self, run: Path, cfg: Config, model: Any, prep: Prepared, baseline: Any, report: DataReport, fit: Any):
        from safetensors.numpy import save_file

        val: Examples = prep.extra["val"]
        with meter.measure("forward", "validation", len(prep.val_items)):
            probs = self.predict_proba(model, prep.extra["val_px"], 0, cfg.eval.batch_size)
        # Golden images for a later `tunesmith export --merge` parity check (the sources may be array rows).
        save_file({"pixels": np.ascontiguousarray(prep.extra["val_px"][:64])}, str(run / "golden_images.safetensors"))
        gallery = _gallery(prep.extra["val_px"], val, probs, self.labels)
        from tunesmith.eval.report import build_report

        val_y = np.array([it["labels"] for it in prep.val_items])
        train_y = np.array([it["labels"] for it in prep.train_items])
        return build_report(
            run, cfg=cfg, labels=self.labels, val_y=val_y, probs=probs, train_y=train_y,
            probe=baseline.probe(train_y, cfg.train.seed) if cfg.eval.probe else None,
            slices=val.extras, report=report, fit=fit,
            samples=[(r.source, ln) for r, ln in zip(val.inputs, val.lines)], gallery=gallery, sample_key="image",
        )  # fmt: skip

    def parity_check(self, prep: Prepared) -> Any:
        from tunesmith.methods.lora import probability_parity

        golden = prep.extra["val_px"][:256]
        return probability_parity(lambda m: self.predict_proba(m, golden, 0, self.cfg.eval.batch_size))

    def manifest_extras(self, prep: Prepared) -> dict[str, Any]:
        return {
            "data": {"path_column": self.cfg.data.path_column, "label_column": self.cfg.data.label_column},
            "label_map": dict(enumerate(self.labels)),
            "preprocess": {
                "size": self.preprocess.size,
                "mean": list(self.preprocess.mean),
                "std": list(self.preprocess.std),
            },
        }


def _gallery(pixels: np.ndarray, val: Examples, probs: np.ndarray, labels: list[str]) -> str:
    """HTML grid of the most confident validation mistakes: thumbnail, true and predicted label."""
    from html import escape

    from PIL import Image

    y = [labels.index(v) for v in val.labels]
    wrong = [i for i in np.argsort(-probs.max(1)) if probs[i].argmax() != y[i]][:GALLERY]
    cells = []
    for i in wrong:
        buf = io.BytesIO()
        Image.fromarray(pixels[i].transpose(1, 2, 0)).resize((96, 96)).save(buf, format="PNG")
        b64 = base64.b64encode(buf.getvalue()).decode()
        cells.append(
            f"<figure style='display:inline-block;margin:4px;width:110px;font-size:.8em'>"
            f"<img src='data:image/png;base64,{b64}' width=96 height=96 title='{escape(val.inputs[i].source)}'>"
            f"<figcaption>true <b>{escape(labels[y[i]])}</b><br>predicted {escape(labels[int(probs[i].argmax())])} "
            f"({probs[i].max():.2f})</figcaption></figure>"
        )
    if not cells:
        return "<h2>Misclassified validation images</h2><p>none</p>"
    return f"<h2>Misclassified validation images (most confident first)</h2><div>{''.join(cells)}</div>"
