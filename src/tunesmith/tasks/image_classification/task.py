"""Image classification: defects, products, scans. The classification hooks (labels, baselines, report,
parity) are text classification's; what differs is reading images, preprocessing and the model."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config, Default
from tunesmith.data.cache import ArrayCache, cache_key, cache_root
from tunesmith.data.images import check_images, read_images, under_quarter
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import DataError
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks import classification as clf
from tunesmith.tasks.base import TASKS, Task, TaskData
from tunesmith.tasks.classification import ClassificationPrepared
from tunesmith.tasks.image_classification.pool import ImagePool
from tunesmith.tasks.image_classification.vision import (
    EFFICIENTNET,
    EFFICIENTNET_PREPROCESS,
    Preprocess,
    augment,
    backbone_kind,
    build_classifier,
    preprocess_from_processor,
    probabilities,
    resize_square,
    run_batched,
)
from tunesmith.train.result import FitResult

GALLERY = 24
# Small pictures (most under a quarter of the model's input) are trained at this share of a convolutional model's
# side (224 -> 160 px, half the pixels). Scaled up to 224 px, a 28 px picture shows nothing it does not at 160: on
# the recipe suite, Fashion-MNIST 85.6% at 224 px in 403 s, 85.4% at 160 in 158 s, 83.6% at 112 in 90 s; digits 95.8%
# at 224 in 170 s, 97.2% at 160 in 89 s, 95.2% at 112 in 53 s (one run each, 5 epochs, no augmentation).
SMALL_PICTURE_SHARE = 5 / 7
MIN_SIDE = 32  # EfficientNet's features are 1/32 of its input: below that it has no pixel left to pool


@TASKS.register("image-classification")
class ImageClassification(Task):
    name = "image-classification"
    unit = "images"
    pool = ImagePool()
    # 224x224 conv activations are tens of MB each: under fit()'s 1 MiB glibc mmap threshold every one was a
    # fresh mmap, and the Fashion-MNIST demo spent 5m49s of system time in page faults against 8m50s of user time.
    mmap_threshold = 64 << 20
    # Optimizer steps to aim for, min and max epochs. A pre-trained image model needs more steps than a sentence
    # encoder to move to a new kind of picture: on scikit-learn's digits (425 training images, batch 8) 2 epochs
    # (106 steps) scored 88.5% against the frozen probe's 89.5%, 5 epochs (265 steps) 94.0% (+4.5, CI +1.5 .. +7.5).
    epoch_rule = (250, 1, 8)
    learning_rates = {
        "full": [(10e6, 3e-4), (100e6, 1e-4), (math.inf, 3e-5)],
        "lora": [(1e9, 5e-4), (math.inf, 2e-4)],
    }
    default_image_size = 224

    # --- data -------------------------------------------------------------------------------
    def _read_split(self, path: str, report: DataReport) -> tuple[Examples | None, str]:
        d = self.cfg.data
        return read_images(
            path, report, path_column=d.path_column, label_column=d.label_column,
            slice_columns=list(self.cfg.eval.slice_columns), label_names=d.label_names,
        )  # fmt: skip

    def read(self) -> TaskData:
        report = DataReport()
        return clf.read_labelled(self.cfg, report, lambda p: self._read_split(p, report), self.unit)

    def open_defaults(self, cfg: Config, source: ModelSource, data: TaskData) -> list[Default]:
        """``augment.enabled``: on, except for scaled-up thumbnails. When most training images are under a quarter
        of the model's input, a random crop of 60% of a 28 px picture blown up to 224 px removes much of what little
        it holds, and a flip turns a 2 into something else: on the recipe suite's two such sets (5 epochs) training
        without augmentation scored Fashion-MNIST 85.6% against 82.2% with it, digits 95.8% against 94.0%."""
        if cfg.augment.enabled is not None:
            return []
        stats = data.report.stats.get("images", {}).get("train", {})
        small, total = int(stats.get("under_quarter_input", 0)), int(stats.get("images", 0))
        if total and small * 2 > total:
            why = (
                f"{small:,} of {total:,} training images are under a quarter of the model's input size: crops and "
                "flips of scaled-up thumbnails cost accuracy (docs/defaults.md)"
            )
            return [Default("augment.enabled", False, why)]
        why = f"{total - small:,} of {total:,} training images are at least a quarter of the model's input size"
        return [Default("augment.enabled", True, why)]

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Preprocess:
        """Images have no tokenizer: the model's preprocessing plays that part."""
        if backbone_kind(source.path, source.catalog) == EFFICIENTNET:
            return EFFICIENTNET_PREPROCESS
        return preprocess_from_processor(source.path)

    def save_preprocessor(self, preprocessor: Preprocess, folder: Path) -> None:
        """The image model saves its preprocessing with its weights (vision.ImageClassifier)."""

    def check_inputs(self, preprocessor: Preprocess, data: TaskData) -> int:
        """Image checks per split; the input size is the side of the square input the run trains on
        (``input_side``)."""
        report = data.report
        side, why = input_side(preprocessor, self.cfg.train.max_length, data.all_train, report)
        report.stats["images"] = {
            "train": check_images(data.all_train, preprocessor.size, report, side),
            "validation": check_images(data.val, preprocessor.size, report, side),
            "model_input": f"{side}x{side} RGB, (pixel - {preprocessor.mean[0]:g}) / {preprocessor.std[0]:g}",
            "input_side": f"{side} px ({why})",
        }
        return side

    def _pixels(self, ex: Examples, size: int, key: str) -> np.ndarray:
        """Every image resized once to the model's square input (uint8), cached by content and size."""
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
    def prepare(self, preprocessor: Preprocess, data: TaskData, input_size: int) -> ImagePrepared:
        keys = (data.train.content_key(), data.val.content_key())
        tr, va = self._pixels(data.train, input_size, keys[0]), self._pixels(data.val, input_size, keys[1])
        sel = data.select
        select_key = sel.content_key() if sel is not None else ""
        native, probe_inputs = preprocessor.size, None
        if input_size != native:  # the general model is probed at its own side, not the run's smaller one
            probe_inputs = {
                "train": self._pixels(data.train, native, keys[0]),
                "val": self._pixels(data.val, native, keys[1]),
            }
            if sel is not None:
                probe_inputs["select"] = self._pixels(sel, native, select_key)
        preprocessor = replace(preprocessor, size=input_size)
        return ImagePrepared(
            probe_inputs=probe_inputs,
            probe_size=native,
            features_described="pooled features of the frozen pre-trained network (what enters its head)",
            train_items=clf.label_items(data.train.labels, data.labels),
            val_items=clf.label_items(data.val.labels, data.labels),
            select_items=None if sel is None else clf.label_items(sel.labels, data.labels),
            select_inputs=None if sel is None else self._pixels(sel, input_size, select_key),
            select_key=select_key,
            lengths=None,
            collate=self._train_collate(tr, preprocessor),
            pad_id=0,
            input_size=input_size,
            data=data,
            train_inputs=tr,
            val_inputs=va,
            keys=keys,
            predict=lambda model, px, batch_size: probabilities(model, px, preprocessor, batch_size),
            features=lambda model, px: _frozen_features(model, px, preprocessor),
            preprocess=preprocessor,
        )

    def _train_collate(self, pixels: np.ndarray, pre: Preprocess) -> Any:
        import torch

        a = self.cfg.augment
        gen = torch.Generator().manual_seed(self.cfg.train.seed)

        def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
            x = torch.from_numpy(pixels[[it["i"] for it in items]]).float()
            if a.enabled:
                x = augment(x, a.crop_scale, a.flip, a.color_jitter, gen)
            x = pre.normalise(x).contiguous(memory_format=torch.channels_last)
            return {"pixel_values": x, "labels": torch.tensor([it["labels"] for it in items])}

        return collate

    def build_model(self, source: ModelSource, data: TaskData) -> Any:
        import torch

        kind = backbone_kind(source.path, source.catalog)
        model = build_classifier(source.path, kind, data.labels, self.cfg.trust_remote_code)
        side = self.cfg.train.max_length
        if model.preprocess.any_side and side and side != model.preprocess.size:
            model.preprocess = replace(model.preprocess, size=side)  # saved with the weights: predictors read it
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

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(model(batch["pixel_values"]).float(), batch["labels"])

    def feature_head(self, model: Any) -> Any:
        return model.head

    before_training = clf.before_training
    method_features = clf.method_features
    evaluator = clf.evaluator
    parity_check = clf.parity_check

    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Any, baseline: Any, report: DataReport, fit: FitResult
    ) -> dict[str, Any]:
        from safetensors.numpy import save_file

        probs = clf.validation_probabilities(model, prep, cfg.eval.batch_size)
        # Golden images for a later `tunesmith export --merge` parity check (the sources may be array rows).
        save_file({"pixels": np.ascontiguousarray(prep.val_inputs[:64])}, str(run / "golden_images.safetensors"))
        val = prep.data.val
        gallery = _gallery(prep.val_inputs, val, probs, prep.labels)
        samples = [(r.source, ln) for r, ln in zip(val.inputs, val.lines)]
        return clf.write_report(
            run, cfg, prep, probs, baseline, report, fit, samples, gallery=gallery, sample_key="image"
        )

    def manifest_extras(self, prep: Any) -> dict[str, Any]:
        pre = prep.preprocess
        return {
            "data": {"path_column": self.cfg.data.path_column, "label_column": self.cfg.data.label_column},
            "label_map": dict(enumerate(prep.labels)),
            "preprocess": {"size": pre.size, "mean": list(pre.mean), "std": list(pre.std)},
        }

    summary_lines = staticmethod(clf.summary_lines)

    @classmethod
    def method_preference(cls, n_train: int, classes: int = 2) -> tuple[list[str], str]:
        return clf.method_preference(n_train)

    def data_files(self, path: Path) -> list[Path]:
        """The images a path listing (CSV, JSONL, Parquet) names, inside its folder."""
        from tunesmith.data.readers import read_table

        if path.suffix.lower() not in (".csv", ".jsonl", ".parquet"):
            return []
        base, files = path.parent.resolve(), []
        for row in read_table(path).rows:
            rel = str(row.get(self.cfg.data.path_column) or "")
            target = (base / rel).resolve()
            if rel and target.is_file() and target.is_relative_to(base):
                files.append(target)
        return files


@dataclass(kw_only=True)
class ImagePrepared(ClassificationPrepared):
    preprocess: Preprocess


def _frozen_features(model: Any, pixels: np.ndarray, pre: Preprocess) -> dict[str, np.ndarray]:
    """The pooled features of the frozen body (one reading serves both the head and the probe)."""
    feats = run_batched(model, pixels, pre, lambda m, x: m.features(x))
    return {"first": feats, "mean": feats}


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
            f"<figure style='display:inline-block;vertical-align:top;margin:4px;width:110px;font-size:.8em'>"
            f"<img src='data:image/png;base64,{b64}' width=96 height=96 title='{escape(val.inputs[i].source)}'>"
            f"<figcaption>{escape(where(val, i))}<br>true <b>{escape(labels[y[i]])}</b><br>predicted "
            f"{escape(labels[int(probs[i].argmax())])} ({probs[i].max():.2f})</figcaption></figure>"
        )
    if not cells:
        return "<h2>Most confident mistakes</h2><p>No mistakes on the validation data.</p>"
    return (
        f"<h2>Most confident mistakes ({len(cells)} of {int(sum(probs.argmax(1) != np.array(y)))})</h2>"
        f"<div>{''.join(cells)}</div><p class=note>All validation predictions are in validation_predictions.jsonl."
        "</p>"
    )


def where(val: Examples, i: int) -> str:
    """Where a validation image came from: its file, or its row of an array file (counted from 1)."""
    from pathlib import Path

    source = val.inputs[i].source
    if source.endswith("]") and "[" in source:  # an array file's row: index i is row i + 1, as the checks count
        return f"{Path(source.rsplit('[', 1)[0]).name} row {val.lines[i]}"
    return f"{Path(source).name} (line {val.lines[i]})"


def input_side(pre: Preprocess, configured: int | None, train: Examples, report: DataReport) -> tuple[int, str]:
    """The side of the square input the run trains on, and why: ``train.max_length`` where set (a model whose
    side is fixed takes only its own), else the model's, or ``SMALL_PICTURE_SHARE`` of it for a convolutional model
    when most training images are under a quarter of it."""
    native = pre.size
    if configured:
        problem = None
        if configured != native and not pre.any_side:
            problem = f"this model's input is fixed at {native} px (its position embeddings); leave it unset"
        elif configured < MIN_SIDE:
            problem = f"the side of the square input must be at least {MIN_SIDE} px"
        if problem:
            report.add("error", "max_length", f"train.max_length={configured}: {problem}", field="train.max_length")
            raise DataError(report.problems)
        return configured, "set in config"
    small = sum(1 for r in train.inputs if under_quarter(r.pixels, native))
    if pre.any_side and small * 2 > len(train.inputs):
        side = max(MIN_SIDE, round(native * SMALL_PICTURE_SHARE / 32) * 32)
        return side, (
            f"{small:,} of {len(train.inputs):,} training images are under a quarter of the model's {native} px: "
            f"trained at {side} px, about half the pixels (docs/defaults.md)"
        )
    return native, "the model's own input"
