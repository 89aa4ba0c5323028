"""The one loader of a run's trained weights: full weights from ``model/``, or the base model + the LoRA
adapter from ``adapter/``. Every path a manifest names is confined to the run, and the base model an adapter needs
is the one the run was trained on: a crafted manifest cannot load weights from anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.errors import InputError


def inside_run(run: Path, rel: Any, key: str) -> Path:
    """``run / rel`` for a manifest's relative path; InputError when it is not a relative path that stays inside
    the run (absolute, ``..``, or a link out)."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise InputError(f"{run}/manifest.json: {key} is {rel!r}; expected a path inside the run; refused")
    target = (Path(run) / rel).resolve()
    if not target.is_relative_to(Path(run).resolve()):
        raise InputError(f"{run}/manifest.json: {key} = {rel!r} points outside the run; refused")
    return target


def base_model_path(manifest: dict[str, Any]) -> str:
    """Where the pre-trained model an adapter was trained on is now: the catalog's own copy for a catalog name
    (the manifest's path is not used), else the folder the config named, if its fingerprint is still the one
    recorded at training (changed weights, or a manifest pointing elsewhere, are refused)."""
    from tunesmith.models.catalog import CATALOG, fingerprint_path, resolve

    base = manifest.get("base_model") or {}
    spec, path = base.get("spec"), base.get("path")
    if not isinstance(spec, str) or not isinstance(path, str):
        raise InputError("manifest.json: base_model needs a spec and a path")
    if spec in CATALOG:
        return resolve(spec).path
    local = Path(spec).expanduser()
    if local.is_file() and local.suffix == ".gguf":  # converted once into the cache, by content
        return resolve(spec).path
    if not local.exists():  # a hub id: loaded by id from the Hugging Face cache
        if path != spec:
            raise InputError(f"manifest.json: base_model.path {path!r} is not its spec {spec!r}; refused")
        return spec
    if Path(path).resolve() != local.resolve():
        raise InputError(f"manifest.json: base_model.path {path!r} is not the folder its spec names ({spec}); refused")
    found = fingerprint_path(local.resolve())
    if found != base.get("fingerprint"):
        raise InputError(
            f"the base model at {local} is not the one this run was trained on (fingerprint {found}, recorded "
            f"{base.get('fingerprint')}): its files changed since training; refused"
        )
    return str(local.resolve())


def load_trained(
    run: Path, manifest: dict[str, Any], full: Callable[[Path], Any], base: Callable[[str], Any]
) -> tuple[Any, Path]:
    """(model in eval mode, the folder it came from). ``full(folder)`` loads exported weights; ``base(path)``
    builds the pre-trained model an adapter was trained on, from the checked ``base_model_path``."""
    export = manifest["export"]
    if export.get("path"):
        folder = inside_run(run, export["path"], "export.path")
        model = full(folder)
    else:
        from peft import PeftModel

        folder = inside_run(run, export.get("adapter"), "export.adapter")
        model = PeftModel.from_pretrained(base(base_model_path(manifest)), folder)
    model.eval()
    return model, folder
