"""Batched greedy or sampled decoding that stops at the end of a turn, and the greedy parity check of merges."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from tunesmith.errors import InputError
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.causal_lm.rendering import prompt_ids

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The end-of-sequence token plus the end-of-turn markers this vocabulary has."""
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= {vocab[t] for t in END_OF_TURN if t in vocab}
    return sorted(ids)


def sampling(temperature: float, top_p: float) -> dict[str, Any]:
    if temperature < 0 or not 0 < top_p <= 1:
        raise InputError("temperature must be >= 0 and top_p in (0, 1]")
    if temperature == 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}


def stop_when(event: threading.Event | None) -> dict[str, Any]:
    """generate() keyword arguments that end the generation within one token once ``event`` is set (a server
    whose client went away, a deadline); none when there is no event."""
    if event is None:
        return {}
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _OnEvent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([_OnEvent()])}


def decoding_options(
    tokenizer: Any, max_new_tokens: int, temperature: float, top_p: float, stop: threading.Event | None
) -> dict[str, Any]:
    """generate() keyword arguments shared by batched answers and streaming: the length, the turn's stop tokens,
    the padding id, greedy or sampled decoding, and the stop event."""
    stops = stop_token_ids(tokenizer)
    return {
        "max_new_tokens": max_new_tokens,
        "eos_token_id": stops,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        **sampling(temperature, top_p),
        **stop_when(stop),
    }


def generate_ids(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int | None = None,
    progress: str | None = None,
    stop: threading.Event | None = None,
) -> list[list[int]]:
    """New token ids per prompt (stop token excluded). Prompts are batched by length and padded on the left.
    ``progress`` names a bar on stderr (answers done), for the minutes a held-out set of answers can take."""
    import os
    import sys

    import torch
    from tqdm.auto import tqdm

    options = decoding_options(tokenizer, max_new_tokens, temperature, top_p, stop)
    stops, pad = options["eos_token_id"], options["pad_token_id"]
    device = next(model.parameters()).device
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    out: list[list[int]] = [[] for _ in prompts]
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    quiet = progress is None or os.environ.get("TUNESMITH_NO_PROGRESS") == "1"
    bar = tqdm(total=len(prompts), desc=progress, unit="answer", file=sys.stderr, disable=quiet, dynamic_ncols=True)
    with torch.inference_mode(), bar:
        for s in range(0, len(prompts), batch_size):
            sel = order[s : s + batch_size]
            width = max(len(prompts[i]) for i in sel)
            ids = torch.full((len(sel), width), pad, dtype=torch.long)
            mask = torch.zeros((len(sel), width), dtype=torch.long)
            for j, i in enumerate(sel):
                n = len(prompts[i])
                ids[j, width - n :] = torch.as_tensor(prompts[i], dtype=torch.long)
                mask[j, width - n :] = 1
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **options)
            for j, i in enumerate(sel):
                new = gen[j, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), len(new))
                out[i] = new[:cut]
            bar.update(len(sel))
    return out


def generate_texts(model: Any, tokenizer: Any, prompts: list[list[int]], **kwargs: Any) -> list[str]:
    return [
        tokenizer.decode(x, skip_special_tokens=True).strip() for x in generate_ids(model, tokenizer, prompts, **kwargs)
    ]


def greedy_parity(tokenizer: Any, prompts: list[Any], max_new_tokens: int = 32) -> Any:
    """Generation models: the merged model must give exactly the greedy outputs of base + adapter."""
    ids = [prompt_ids(tokenizer, p) for p in prompts]

    def run(model: Any) -> list[list[int]]:
        return generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, batch_size=16)

    def compare(before: list[list[int]], after: list[list[int]]) -> tuple[bool, dict[str, Any]]:
        same = sum(a == b for a, b in zip(before, after))
        return same == len(before), {"prompts": len(before), "identical_greedy_outputs": same}

    return ParityCheck(run, compare, "greedy outputs")
