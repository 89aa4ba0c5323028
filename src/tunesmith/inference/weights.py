"""The one loader of a run's trained weights: full weights from ``model/``, or the base model + the LoRA
adapter from ``adapter/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_trained(
    run: Path, manifest: dict[str, Any], full: Callable[[Path], Any], base: Callable[[], Any]
) -> tuple[Any, Path]:
    """(model in eval mode, the folder it came from). ``full(folder)`` loads exported weights; ``base()`` builds
    the pre-trained model an adapter was trained on."""
    export = manifest["export"]
    if export.get("path"):
        folder = run / export["path"]
        model = full(folder)
    else:
        from peft import PeftModel

        folder = run / export["adapter"]
        model = PeftModel.from_pretrained(base(), folder)
    model.eval()
    return model, folder
