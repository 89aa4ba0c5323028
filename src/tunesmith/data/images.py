"""Read and check image-classification data (no torch here): an image folder with one sub-folder per class,
a CSV/JSONL of ``path,label`` (paths relative to that file and never allowed to leave its folder), IDX files
(as Fashion-MNIST ships them, gzip or raw) and NumPy ``.npz`` arrays (``images`` / ``labels``).

Every image is decoded once here, converted to RGB (grey, RGBA and palette images are converted, and the
report says how many), and identified by a hash of its decoded pixels, so duplicates and train/validation
leakage are found even when the same picture was saved twice under different names or formats.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, Examples, LabelTypeError, lines_text, named_label
from tunesmith.errors import DataError
from tunesmith.files import not_found

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MANIFEST_SUFFIXES = {".csv", ".jsonl", ".json", ".parquet"}


@dataclass
class ImageRef:
    """Where one image came from (a file, or row ``index`` of an array file) and its decoded RGB pixels."""

    source: str
    pixels: np.ndarray  # uint8, (height, width, 3)
    mode: str  # the mode it was stored in (L, RGB, RGBA, P, ...)


# Decoded pixels per image: a small file may declare a huge canvas (a 100 KB PNG of 9000 x 9000 decodes to
# ~240 MB), so the header's size is checked before any pixel is decoded.
MAX_IMAGE_PIXELS = 40_000_000


def decode_image(source: Path | bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, str]:
    """(H x W x 3 uint8 pixels, the file's own mode) of an image file or its bytes; ValueError saying why not.
    16-bit greyscale is scaled to 8 bits (not clipped); the size is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ValueError(f"{width} x {height} pixels; at most {max_pixels:,} per image")
            img.load()
            return _to_rgb8(img), img.mode
    except UnidentifiedImageError:
        raise ValueError("not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"too many pixels ({exc})") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt or truncated image ({exc})") from None


def _to_rgb8(img: Any) -> np.ndarray:
    """8-bit RGB. Pillow's own convert("RGB") clips 16-bit and 32-bit greyscale at 255, which turns most of such
    an image white; these are scaled by their bit depth instead."""
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) <= 65535 else values.max()
        if img.mode == "I" and values.max(initial=0) <= 255:
            top = 255.0  # 8-bit values held in a 32-bit image
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    return np.asarray(rgb, dtype=np.uint8).copy()


def decode_file(path: Path) -> tuple[np.ndarray, str]:
    if path.stat().st_size == 0:
        raise ValueError("zero-byte file")
    return decode_image(path)


def pixel_key(pixels: np.ndarray) -> str:
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(pixels.tobytes())
    return h.hexdigest()[:32]


def array_shape_problem(images: np.ndarray) -> str | None:
    """Why an array file's images cannot be read as (n, h, w[, channels]) pictures, or None."""
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        return f"images must be (n, h, w) or (n, h, w, channels); got {images.shape}"
    return None


def array_mode(images: np.ndarray) -> str:
    """The mode an array file's images were stored in: L, RGB or RGBA."""
    return {3: "L", 4: {1: "L", 3: "RGB", 4: "RGBA"}.get(images.shape[-1], "?")}[images.ndim]


def array_rgb8(img: np.ndarray) -> np.ndarray:
    """One image of an array file as H x W x 3 uint8: floats in [0, 1] scaled to 0-255, grey repeated to three
    channels, alpha dropped."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and arr.min() >= 0 and arr.max() <= 1:
            arr = np.round(arr * 255)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[-1] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def image_ref(file: Path, shown: str, fail: Callable[[str, str], None]) -> ImageRef | None:
    """One image file decoded, or None after telling ``fail(check, message)`` why not (an unsupported suffix,
    a missing file, unreadable pixels); ``shown`` is how the file is named in the message."""
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        allowed = ", ".join(sorted(IMAGE_SUFFIXES))
        fail("image_format", f"{shown}: unsupported file type {file.suffix!r}; allowed: {allowed}")
        return None
    try:
        pixels, mode = decode_file(file)
    except FileNotFoundError:
        fail("image_missing", f"{shown}: file not found")
        return None
    except ValueError as exc:
        fail("image_unreadable", f"{shown}: {exc}")
        return None
    return ImageRef(str(file), pixels, mode)


def inside_folder(base: Path, rel: str) -> Path | None:
    """``rel`` resolved against ``base``; None when it is absolute or leaves ``base`` (``..``, symlinks)."""
    if Path(rel).is_absolute():
        return None
    target = (base / rel).resolve()
    return target if target.is_relative_to(base.resolve()) else None


def open_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes (magic number)")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"IDX header promises {shape} but the file holds {body.size} bytes of data")
    return body.reshape(shape)


def idx_labels_path(images: Path) -> Path:
    """Fashion-MNIST naming: ``train-images-idx3-ubyte.gz`` -> ``train-labels-idx1-ubyte.gz``."""
    return images.with_name(images.name.replace("images-idx3", "labels-idx1"))


class _Reader:
    def __init__(self, path: str, report: DataReport, label_names: list[str] | None):
        self.path, self.report, self.label_names = path, report, label_names
        self.inputs: list[ImageRef] = []
        self.labels: list[str] = []
        self.lines: list[int] = []
        self.extras: dict[str, list[str]] = {}

    def error(self, check: str, message: str, line: int | None = None, field: str | None = None) -> None:
        self.report.add("error", check, message, self.path, line, field)

    def add_file(self, file: Path, label: str, line: int, shown: str) -> bool:
        ref = image_ref(file, shown, lambda check, message: self.error(check, message, line))
        if ref is None:
            return False
        self.inputs.append(ref)
        self.labels.append(label)
        self.lines.append(line)
        return True

    def label_of(self, value: Any) -> str | None:
        return named_label(value, self.label_names)

    # --- one reader per layout ----------------------------------------------------------------
    def folder(self, root: Path) -> None:
        classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            self.error("image_folder", "no class sub-folders; expected one folder of images per class")
            return
        n = 0
        for d in classes:
            for f in sorted(d.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    n += 1
                    shown = str(f.relative_to(root))
                    if not f.resolve().is_relative_to(root.resolve()):
                        self.error("path_escape", f"{shown} is a link to {f.resolve()}, outside {root}; files must "
                                   "stay inside the image folder", n)  # fmt: skip
                        continue
                    self.add_file(f, d.name, n, shown)

    def manifest(self, file: Path, path_column: str, label_column: str, extra: list[str]) -> None:
        try:
            table = read_table(file)
        except DataError as exc:
            self.report.problems.extend(exc.problems)
            return
        for col, key in (
            (path_column, "data.path_column"),
            (label_column, "data.label_column"),
            *((c, "eval.slice_columns") for c in extra),
        ):
            if col not in table.columns:
                self.error(
                    "missing_column", f"column {col!r} (set by {key}) not found; columns: {', '.join(table.columns)}", 1
                )
                return
        self.extras = {c: [] for c in extra}
        base = file.parent
        for row, line in zip(table.rows, table.lines):
            rel = row.get(path_column)
            try:
                label = self.label_of(row.get(label_column))
            except LabelTypeError as exc:
                self.error("label_type", str(exc), line, label_column)
                continue
            if not isinstance(rel, str) or not rel.strip():
                self.error("missing_path", "image path is missing", line, path_column)
                continue
            if label is None:
                self.error("missing_label", "label is missing", line, label_column)
                continue
            target = inside_folder(base, rel.strip())
            if target is None:
                self.error(
                    "path_escape",
                    f"{rel!r} is outside {base} (absolute, '..' or a link out); paths must stay inside the "
                    "folder of the file that lists them",
                    line,
                    path_column,
                )
                continue
            if self.add_file(target, label, line, rel):
                for c in extra:
                    self.extras[c].append(str(row.get(c)))

    def arrays(self, images: np.ndarray, labels: np.ndarray, unit_source: str) -> None:
        problem = array_shape_problem(images)
        if problem:
            self.error("array_shape", problem)
            return
        if len(images) != len(labels):
            self.error("array_shape", f"{len(images)} images but {len(labels)} labels")
            return
        mode = array_mode(images)
        for i, (img, y) in enumerate(zip(images, labels)):
            self.inputs.append(ImageRef(f"{unit_source}[{i}]", array_rgb8(img), mode))
            self.labels.append(self.label_of(int(y) if np.issubdtype(np.asarray(y).dtype, np.integer) else y) or "")
            self.lines.append(i + 1)

    def idx(self, file: Path) -> None:
        labels_file = idx_labels_path(file)
        try:
            images = open_idx(file)
            labels = open_idx(labels_file)
        except FileNotFoundError as exc:
            self.error("unreadable", f"{exc.filename}: file not found (IDX labels are read from {labels_file.name})")
            return
        except (ValueError, OSError) as exc:
            self.error("unreadable", f"not a readable IDX file: {exc}")
            return
        self.arrays(images, labels, file.name)

    def npz(self, file: Path) -> None:
        try:
            with np.load(file, allow_pickle=False) as z:
                if "images" not in z or "labels" not in z:
                    self.error("missing_column", f"expected arrays 'images' and 'labels'; found {', '.join(z.files)}")
                    return
                self.arrays(z["images"], z["labels"], file.name)
        except (ValueError, OSError) as exc:
            self.error("unreadable", f"not a readable .npz file: {exc}")


def read_images(
    path: str,
    report: DataReport,
    *,
    path_column: str,
    label_column: str,
    slice_columns: list[str],
    label_names: list[str] | None,
) -> tuple[Examples | None, str]:
    """One split -> (Examples whose inputs are ImageRefs, sha256 of the listing), problems into ``report``."""
    p = Path(path)
    reader = _Reader(path, report, label_names)
    name = p.name.lower()
    if p.is_dir():
        reader.folder(p)
    elif not p.exists():
        reader.error("unreadable", not_found(p, "file or folder not found"))
        return None, ""
    elif "idx3" in name:
        reader.idx(p)
    elif p.suffix.lower() == ".npz":
        reader.npz(p)
    elif p.suffix.lower() in MANIFEST_SUFFIXES:
        reader.manifest(p, path_column, label_column, slice_columns)
    else:
        reader.error(
            "format",
            f"unsupported data {p.suffix!r}; allowed: a folder of class sub-folders, a CSV/JSONL/Parquet of "
            "path,label, IDX files (*-images-idx3-ubyte[.gz]) or .npz with images and labels",
        )
        return None, ""
    keys = [pixel_key(r.pixels) for r in reader.inputs]
    digest = hashlib.sha256("".join(keys).encode() + json.dumps(reader.labels).encode()).hexdigest()
    ex = Examples(path, reader.inputs, reader.labels, reader.lines, reader.extras, keys=keys)
    return ex, digest


def under_quarter(pixels: np.ndarray, input_size: int) -> bool:
    """A picture whose shorter side is under a quarter of the model's input: scaled up more than 4x (the
    ``small_images`` warning; the augmentation and input-side rules read the same test)."""
    return min(pixels.shape[:2]) * 4 < input_size


def check_images(split: Examples, input_size: int, report: DataReport, side: int | None = None) -> dict[str, Any]:
    """Sizes and modes: images far smaller than the model's input, and mode conversions (said, not hidden).
    ``side``: the input side the run trains on, where it differs from the model's."""
    sizes = np.array([r.pixels.shape[:2] for r in split.inputs]) if len(split) else np.zeros((0, 2))
    modes = Counter(r.mode for r in split.inputs)
    small = [ln for ln, r in zip(split.lines, split.inputs) if under_quarter(r.pixels, input_size)]
    unit = "rows" if split.inputs and "[" in split.inputs[0].source else "lines"
    if small:
        report.add(
            "warning",
            "small_images",
            f"{len(small)} image(s) are under a quarter of the model's {input_size}px input and will be scaled "
            f"up {(side or input_size) / max(1, int(sizes.min())):.0f}x at most ({lines_text(small, unit)})",
            split.source,
            small[0],
        )
    converted = {m: c for m, c in modes.items() if m != "RGB"}
    if converted:
        desc = ", ".join(f"{c} {m}" for m, c in sorted(converted.items()))
        report.add(
            "warning",
            "image_mode",
            f"converted to RGB: {desc} (grey repeated to 3 channels, alpha dropped)",
            split.source,
        )
    return {
        "images": len(split),
        "under_quarter_input": len(small),  # images scaled up more than 4x (augment.enabled reads the share)
        "height": {"min": int(sizes[:, 0].min()), "max": int(sizes[:, 0].max())} if len(split) else {},
        "width": {"min": int(sizes[:, 1].min()), "max": int(sizes[:, 1].max())} if len(split) else {},
        "modes": dict(modes),
    }
