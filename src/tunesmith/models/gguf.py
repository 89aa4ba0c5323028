"""GGUF checkpoints (llama.cpp's format) become plain Hugging Face folders, once, in the user cache.

transformers can read a GGUF file (dequantising it) but refuses to save a model loaded that way, and every load
re-runs the slow tokenizer and tensor conversion. Here the dequantised weights are written once as safetensors
(fp32, so nothing is lost beyond the file's own quantisation) with the tokenizer and its chat template; later
loads are ordinary ``from_pretrained`` calls on that folder and need no ``gguf`` package.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tunesmith.errors import ConfigError

DONE = ".tunesmith-converted"


def converted_folder(gguf: Path, cache: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]
    return cache / "models" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path, cache: Path) -> Path:
    """The Hugging Face folder for ``gguf``, converting it on first use. Safe against a crash mid-way (the folder
    appears by rename only when complete) and against two processes converting at once (the loser's copy goes)."""
    out = converted_folder(gguf, cache)
    if (out / DONE).is_file():
        return out
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise ConfigError(f"model: reading {gguf.name} needs the gguf package (`pip install gguf`)") from None
    import sys

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print(f"tunesmith: converting {gguf.name} once into {out} (later runs load it directly)", file=sys.stderr)
    import contextlib
    import io

    folder, name = str(gguf.parent), gguf.name
    # The dequantisation progress bar is a bare tqdm outside transformers' switch; errors still raise.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    raw = loaded.config.to_dict()
    raw.pop("quantization_config", None)
    raw.pop("_name_or_path", None)
    config = AutoConfig.for_model(**raw)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise ConfigError(f"model: {gguf} did not convert cleanly (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    tmp = out.with_name(f".{out.name}.{id(model)}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / DONE).write_text(f"converted from {gguf}\n", encoding="utf-8")
    try:
        tmp.rename(out)
    except OSError:  # another process finished first: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / DONE).is_file():
            raise
    return out
