"""A pool of images for label-next and learn, in any layout the task trains from, labels optional:

- a folder: images directly in it are unlabelled; images in a sub-folder carry that folder's name as their label;
- a CSV / JSONL / Parquet listing with a path column (paths relative to the listing, never leaving its folder)
  and an optional label column, empty where unlabelled;
- a NumPy ``.npz`` with ``images`` and optionally ``labels``; IDX files (labels read when the labels file exists).

Two images with the same decoded pixels are one example, whatever their file names or formats. A learning round's
training data is written as a listing beside PNG copies of its images (lossless: the pixels, and so the feature
cache's keys, stay the same)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.images import (
    MANIFEST_SUFFIXES,
    ImageRef,
    array_mode,
    array_rgb8,
    array_shape_problem,
    idx_labels_path,
    image_ref,
    inside_folder,
    open_idx,
    pixel_key,
)
from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport
from tunesmith.errors import DataError, InputError
from tunesmith.files import not_found, write_csv
from tunesmith.tasks.pool import Embed, Pool, PoolKind, cached_embeddings, read_labels

RESIZE_CHUNK = 256  # images resized to the model's input at a time (224 px RGB: 150 KB each)


class ImagePool(PoolKind):
    unit = "images"
    input_option = "--path-column"
    default_input = "path"
    shown_as = "image"
    # Labels to reach 95% of the full-pool accuracy, against random picks: margin 0.86x on digits and 0.57x on
    # Fashion-MNIST; diverse 1.67x and 0.57x (clusters of upscaled thumbnails' features spread picks poorly)
    default_strategy = "margin"
    # EfficientNet's pooled features of small pictures sit close together: at 0.95, 271 of digits' 500 training
    # images had a "twin", 32 of them of another class; at 0.98, 9 had one, none of another class
    default_near = 0.98

    def input_column(self, data: Any) -> str:
        return data.path_column

    def read(self, path: str | Path, input_column: str, label_column: str, label_names: list[str] | None) -> Pool:
        p = Path(path)
        if not p.exists():
            raise InputError(f"--pool {path}: {not_found(p, 'file or folder not found')}")
        reading = _Reading(str(p), input_column, label_column)
        layout = _layout(p)
        if layout == "folder":
            reading.folder(p)
        elif layout == "idx":
            reading.idx(p)
        elif layout == "npz":
            reading.npz(p)
        elif layout == "listing":
            reading.listing(p)
        else:
            reading.error(
                "format",
                f"unsupported pool {p.suffix!r}; allowed: a folder of images (sub-folders name labels), a CSV/JSONL/"
                "Parquet listing of paths, IDX files (*-images-idx3-ubyte[.gz]) or .npz with images",
            )
        if reading.report.problems:
            raise DataError(reading.report.problems)
        if not reading.inputs:
            raise InputError(f"{path}: the pool holds no images")
        return Pool(
            path=str(p),
            columns=reading.columns,
            rows=reading.rows,
            lines=reading.lines,
            inputs=reading.inputs,
            keys=[pixel_key(r.pixels) for r in reading.inputs],
            # a folder's sub-folder names are the labels as they stand (the training reader does not map them)
            labels=read_labels(reading.cells, reading.lines, str(p), label_column, None if p.is_dir() else label_names),
            input_column=input_column,
            label_column=label_column,
            unit=self.unit,
            line_word="row" if reading.arrays_read else "line",
        )

    def encoder(self, spec: str, cache_dir: str | None, trust_remote_code: bool, max_length: int | None) -> Embed:
        from tunesmith.models.catalog import resolve

        source = resolve(spec, cache_dir)
        loaded: list[Any] = []

        def embed(images: list[ImageRef]) -> np.ndarray:
            def compute() -> np.ndarray:
                if not loaded:
                    loaded.append(_backbone(source, trust_remote_code))
                return image_features(loaded[0], [r.pixels for r in images])

            keys = [pixel_key(r.pixels) for r in images]
            return cached_embeddings(cache_dir, "image", source.fingerprint, 0, keys, compute)

        return embed

    def predictable(self, inputs: list[Any]) -> list[Any]:
        return [r.pixels for r in inputs]

    def write_training(
        self, folder: Path, inputs: list[Any], labels: list[str], input_column: str, label_column: str
    ) -> Path:
        from PIL import Image

        images = folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        rows = []
        for ref, label in zip(inputs, labels):
            name = f"images/{pixel_key(ref.pixels)}.png"
            if not (folder / name).is_file():
                Image.fromarray(ref.pixels).save(folder / name)
            rows.append((name, label))
        out = folder / "train.csv"
        write_csv(out, [input_column, label_column], rows)
        return out

    def picture(self, path: str | Path, cell: str) -> np.ndarray | None:
        p, cell = Path(path), str(cell).strip()
        array = ARRAY_CELL.fullmatch(cell)
        layout = _layout(p)
        if array and layout in ("npz", "idx"):
            if array.group(1) != p.name:
                raise InputError(f"{cell!r}: not a row of {p.name}")
            images, index = _array_images(p), int(array.group(2))
            if images is None or index >= len(images):
                raise InputError(f"{cell!r}: {p.name} has no such image")
            return array_rgb8(images[index])
        base = p if layout == "folder" else p.parent
        target = inside_folder(base, cell) if cell else None
        if target is None:
            raise InputError(f"{cell!r}: not an image path inside {base}")
        problems: list[str] = []
        ref = image_ref(target, cell, lambda check, message: problems.append(message))
        if ref is None:
            raise InputError("; ".join(problems))
        return ref.pixels


def _layout(p: Path) -> str:
    """How a pool is laid out: ``folder``, ``idx``, ``npz``, ``listing`` or ``unknown`` (by its name)."""
    if p.is_dir():
        return "folder"
    if "idx3" in p.name.lower():
        return "idx"
    suffix = p.suffix.lower()
    return "npz" if suffix == ".npz" else "listing" if suffix in MANIFEST_SUFFIXES else "unknown"


def _array_images(p: Path) -> np.ndarray | None:
    """An array pool's images, read once while the file is unchanged (a labelling page shows one image per request
    and a retrain copies one per labelled row: reading the whole file for each was slow for large pools)."""
    if not p.is_file():
        raise InputError(f"{p}: {not_found(p, 'the pool file is gone')}")
    stat = p.stat()
    return _read_array_images(str(p.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_array_images(path: str, mtime_ns: int, size: int) -> np.ndarray | None:
    p = Path(path)
    if _layout(p) == "idx":
        images = open_idx(p)
    else:
        with np.load(p, allow_pickle=False) as z:
            images = z["images"] if "images" in z.files else None
    if images is not None:
        images.flags.writeable = False  # shared between calls
    return images


ARRAY_CELL = re.compile(r"(.+)\[(\d+)\]")  # an array file's row as label-next writes it: "pool.npz[17]"


def _backbone(source: Any, trust_remote_code: bool) -> Any:
    """The frozen pre-trained image model (its classifier head is never read here)."""
    from tunesmith.runtime import quiet_libraries
    from tunesmith.tasks.image_classification.vision import backbone_kind, build_classifier

    quiet_libraries()
    kind = backbone_kind(source.path, source.catalog)
    return build_classifier(source.path, kind, ["a", "b"], trust_remote_code).eval()


def image_features(model: Any, pixels: list[np.ndarray]) -> np.ndarray:
    """The frozen body's pooled features of images of any size (resized to the model's input a chunk at a time)."""
    from tunesmith.tasks.image_classification.vision import resize_square, run_batched

    size, out = model.preprocess.size, []
    for s in range(0, len(pixels), RESIZE_CHUNK):
        batch = np.stack([resize_square(px, size) for px in pixels[s : s + RESIZE_CHUNK]])
        out.append(run_batched(model, batch, model.preprocess, lambda m, x: m.features(x)))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class _Reading:
    """A pool's images, the cells of its label column (None where it has none) and the rows written back."""

    def __init__(self, path: str, input_column: str, label_column: str):
        self.path, self.input_column, self.label_column = path, input_column, label_column
        self.report = DataReport()
        self.inputs: list[ImageRef] = []
        self.cells: list[Any] = []
        self.lines: list[int] = []
        self.rows: list[dict[str, Any]] = []
        self.columns = [input_column, label_column]
        self.arrays_read = False  # an array file: its "lines" are rows

    def error(self, check: str, message: str, line: int | None = None, field: str | None = None) -> None:
        self.report.add("error", check, message, self.path, line, field)

    def add_file(self, file: Path, line: int, shown: str, cell: Any, row: dict[str, Any]) -> None:
        def fail(check: str, message: str) -> None:
            self.error(check, message, line, None if check == "image_format" else self.input_column)

        ref = image_ref(file, shown, fail)
        if ref is None:
            return
        self.inputs.append(ref)
        self.cells.append(cell)
        self.lines.append(line)
        self.rows.append(row)

    def folder(self, root: Path) -> None:
        files = sorted(f for f in root.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.parts[-2:]))
        for n, f in enumerate(files, 1):
            rel = f.relative_to(root)
            if not f.resolve().is_relative_to(root.resolve()):
                self.error("path_escape", f"{rel} is a link to {f.resolve()}, outside {root}; files must stay inside "
                           "the pool's folder", n)  # fmt: skip
                continue
            label = rel.parts[0] if len(rel.parts) > 1 else None
            self.add_file(f, n, str(rel), label, {self.input_column: rel.as_posix(), self.label_column: label})

    def listing(self, file: Path) -> None:
        try:
            table = read_table(file)
        except DataError as exc:
            self.report.problems.extend(exc.problems)
            return
        if self.input_column not in table.columns:
            self.error(
                "missing_column",
                f"column {self.input_column!r} (set by --path-column / data.path_column) not found; columns: "
                f"{', '.join(table.columns)}",
                1,
            )
            return
        self.columns = list(table.columns)
        for row, line in zip(table.rows, table.lines):
            rel = row.get(self.input_column)
            if not isinstance(rel, str) or not rel.strip():
                self.error("missing_path", "image path is missing", line, self.input_column)
                continue
            target = inside_folder(file.parent, rel.strip())
            if target is None:
                self.error(
                    "path_escape",
                    f"{rel!r} is outside {file.parent} (absolute, '..' or a link out); paths must stay inside the "
                    "folder of the file that lists them",
                    line,
                    self.input_column,
                )
                continue
            self.add_file(target, line, rel, row.get(self.label_column), row)

    def arrays(self, images: np.ndarray, labels: np.ndarray | None, name: str) -> None:
        problem = array_shape_problem(images)
        if problem:
            self.error("array_shape", problem)
            return
        if labels is not None and len(labels) != len(images):
            self.error("array_shape", f"{len(images)} images but {len(labels)} labels")
            return
        mode, self.arrays_read = array_mode(images), True
        for i, img in enumerate(images):
            cell = None if labels is None else labels[i].item()
            self.inputs.append(ImageRef(f"{name}[{i}]", array_rgb8(img), mode))
            self.cells.append(cell)
            self.lines.append(i + 1)
            self.rows.append({self.input_column: f"{name}[{i}]", self.label_column: cell})

    def npz(self, file: Path) -> None:
        try:
            with np.load(file, allow_pickle=False) as z:
                if "images" not in z:
                    self.error("missing_column", f"expected an array 'images'; found {', '.join(z.files)}")
                    return
                self.arrays(z["images"], z.get("labels"), file.name)
        except (ValueError, OSError) as exc:
            self.error("unreadable", f"not a readable .npz file: {exc}")

    def idx(self, file: Path) -> None:
        labels_file = idx_labels_path(file)
        try:
            images = open_idx(file)
            labels = open_idx(labels_file) if labels_file.is_file() else None
        except (ValueError, OSError) as exc:
            self.error("unreadable", f"not a readable IDX file: {exc}")
            return
        self.arrays(images, labels, file.name)
