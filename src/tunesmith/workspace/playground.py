"""Try a run or a registered version: classify a text, an image or a table row, or chat with a causal LM and
read the general model's answer beside the tuned one. Models are loaded once and kept (the two last used), and
one request at a time uses a model."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tunesmith.data.images import decode_image
from tunesmith.errors import InputError
from tunesmith.inference import load

KEEP = 2
MAX_CHARS = 10_000
MAX_NEW_TOKENS = 512


class Playground:
    def __init__(self) -> None:
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # the cache
        self._use = threading.Lock()  # one request at a time on the models

    def model(self, run: Path) -> Any:
        key = str(run)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load(run, "auto")
        with self._lock:
            self._models[key] = model
            while len(self._models) > KEEP:
                self._models.popitem(last=False)
        return model

    def classify(self, run: Path, text: str | None = None, image: bytes | None = None,
                 row: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """The label, its probability and every class's, for one input of the run's kind."""
        model = self.model(run)
        if getattr(model, "generates", False):
            raise InputError("this run generates text: chat with it instead")
        kind = getattr(model, "input_kind", "text")
        if kind == "image":
            if not image:
                raise InputError("image: choose an image file (PNG, JPEG, ...)")
            try:
                given: Any = decode_image(image)[0]
            except ValueError as exc:
                raise InputError(f"image: {exc}") from None
        elif kind == "row":
            if not row:
                raise InputError("row: give the row as a JSON object of column -> value")
            given = model.check_rows([row])[0]
        else:
            if not text or not text.strip():
                raise InputError("text: write something to classify")
            if len(text) > MAX_CHARS:
                raise InputError(f"text: {len(text)} characters; at most {MAX_CHARS}")
            given = text
        with self._use:
            (prediction,) = model.predict([given])
        out = dataclasses.asdict(prediction)
        out["probabilities"] = dict(sorted(out["probabilities"].items(), key=lambda kv: -kv[1]))
        return out

    def chat(self, run: Path, messages: list[dict[str, str]], max_new_tokens: int = 128, base: bool = True,
             system: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The tuned model's answer to the conversation, and (``base``) the general model's to the same prompt."""
        model = self.model(run)
        if not getattr(model, "generates", False):
            raise InputError("this run classifies: use the classify form")
        if not messages or messages[-1].get("role") != "user" or not messages[-1].get("content", "").strip():
            raise InputError("messages: end with the user's message")
        if sum(len(m.get("content", "")) for m in messages) > MAX_CHARS:
            raise InputError(f"messages: at most {MAX_CHARS} characters in all")
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise InputError(f"max_new_tokens: 1 to {MAX_NEW_TOKENS}")
        prompt: Any = messages if model.format == "chat" else messages[-1]["content"]
        options = {"max_new_tokens": max_new_tokens, "system": system}
        with self._use:
            out = {"tuned": model.complete(prompt, **options)}
            if base:
                out["base"] = model.complete_base(prompt, **options)
        return out
