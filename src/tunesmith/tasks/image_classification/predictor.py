"""A finished image-classification run: labels and probabilities for new images (paths, arrays, PIL images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.images import IMAGE_SUFFIXES, MANIFEST_SUFFIXES, inside_folder, read_images
from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.eval.compare import scored
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.inference.outputs import Prediction, check_output, prediction_record, predictions, write_records
from tunesmith.inference.weights import load_trained
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.classification import correct, label_list, probability_parity
from tunesmith.tasks.image_classification.vision import (
    ImageClassifier,
    backbone_kind,
    build_classifier,
    load_image,
    probabilities,
    resize_square,
)


@PREDICTORS.register("image-classification")
class ImagePredictor(Predictor):
    input_kind = "image"

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any):
        self.run_dir, self.manifest, self.model = run_dir, manifest, model
        self.labels = model.labels
        self.preprocess = model.preprocess

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> ImagePredictor:
        def base(path: str) -> Any:
            kind = backbone_kind(path, manifest["base_model"].get("spec"))
            return build_classifier(path, kind, label_list(manifest["label_map"]))

        model, _ = load_trained(run, manifest, ImageClassifier.from_pretrained, base)
        return cls(run, manifest, model)

    def pixels(self, images: list[Any]) -> np.ndarray:
        arrays = []
        for img in images:
            if isinstance(img, (str, Path)):
                arr = load_image(img)
            elif isinstance(img, np.ndarray):
                arr = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
            else:  # a PIL image
                arr = np.asarray(img.convert("RGB"))
            arrays.append(resize_square(np.ascontiguousarray(arr, dtype=np.uint8), self.preprocess.size))
        return np.stack(arrays) if arrays else np.zeros((0, 3, self.preprocess.size, self.preprocess.size), np.uint8)

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        return probabilities(self.model, pixels, self.preprocess, batch_size)

    def predict_proba(self, images: list[Any]) -> np.ndarray:
        return self.predict_pixels(self.pixels(images))

    def predict(self, images: list[Any]) -> list[Prediction]:
        if isinstance(images, (str, Path)):
            raise TypeError("predict takes a list of images")
        return predictions(self.predict_proba(images), self.labels)

    def _inputs(self, path: Path) -> list[Path]:
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            col = self.manifest["data"].get("path_column", "path")
            table = read_table(path)
            if col not in table.columns:
                raise InputError(f"{path}: column {col!r} not found; columns: {', '.join(table.columns)}")
            files = []
            for row, line in zip(table.rows, table.lines):
                target = inside_folder(path.parent, str(row.get(col) or ""))
                if target is None:
                    raise InputError(f"{path}:line {line}: {row.get(col)!r} is outside {path.parent}")
                files.append(target)
            return files
        return [path]

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        if options:
            raise InputError(f"{', '.join(options)}: generation options; this run is an image classifier")
        out = check_output(output_file)
        files = self._inputs(Path(input_file))
        if not files:
            raise InputError(f"{input_file}: no images found")
        preds = self.predict([str(f) for f in files])
        write_records(out, [{"path": str(f), **prediction_record(p)} for f, p in zip(files, preds)])
        return len(files)

    def evaluate_file(self, path: str | Path) -> dict[str, Any]:
        report = DataReport()
        d = self.manifest["data"]
        ex, _ = read_images(
            str(path), report, path_column=d.get("path_column", "path"), label_column=d.get("label_column", "label"),
            slice_columns=[], label_names=None,
        )  # fmt: skip
        unknown = sorted({y for y in (ex.labels if ex else [])} - set(self.labels))
        if unknown:
            report.add("error", "unseen_label", f"labels the model does not know: {', '.join(unknown)}", str(path))
        if report.errors or ex is None:
            raise DataError(report.errors or [Problem("error", "empty_file", "no images", str(path))])
        probs = self.predict_pixels(np.stack([resize_square(r.pixels, self.preprocess.size) for r in ex.inputs]))
        y = np.array([self.labels.index(v) for v in ex.labels])
        return scored(y, probs, self.labels)

    def example_scores(self, examples: Examples) -> np.ndarray:
        return correct(self.predict_proba([r.pixels for r in examples.inputs]), self.labels, examples.labels)

    def parity_check(self) -> ParityCheck:
        from safetensors.numpy import load_file

        golden = load_file(str(self.run_dir / "golden_images.safetensors"))["pixels"]
        return probability_parity(lambda m: probabilities(m, golden, self.preprocess))
