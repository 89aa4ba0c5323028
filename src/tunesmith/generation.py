"""Generate with a causal LM: batched greedy or sampled decoding that stops at the end of a turn, streaming to a
callback, and the Generator a finished causal-lm run loads into (``tunesmith.load(run).generate(...)``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.cache import atomic_write_bytes
from tunesmith.errors import DataError, InputError, Problem

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The end-of-sequence token plus the end-of-turn markers this vocabulary has."""
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= {vocab[t] for t in END_OF_TURN if t in vocab}
    return sorted(ids)


def _sampling(temperature: float, top_p: float) -> dict[str, Any]:
    if temperature < 0 or not 0 < top_p <= 1:
        raise InputError("temperature must be >= 0 and top_p in (0, 1]")
    if temperature == 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}


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
) -> list[list[int]]:
    """New token ids per prompt (stop token excluded). Prompts are batched by length and padded on the left."""
    import torch

    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    out: list[list[int]] = [[] for _ in prompts]
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(prompts), batch_size):
            sel = order[s : s + batch_size]
            width = max(len(prompts[i]) for i in sel)
            ids = torch.full((len(sel), width), pad, dtype=torch.long)
            mask = torch.zeros((len(sel), width), dtype=torch.long)
            for j, i in enumerate(sel):
                n = len(prompts[i])
                ids[j, width - n :] = torch.as_tensor(prompts[i], dtype=torch.long)
                mask[j, width - n :] = 1
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=pad,
                **_sampling(temperature, top_p),
            )
            for j, i in enumerate(sel):
                new = gen[j, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), len(new))
                out[i] = new[:cut]
    return out


def generate_texts(model: Any, tokenizer: Any, prompts: list[list[int]], **kwargs: Any) -> list[str]:
    return [
        tokenizer.decode(x, skip_special_tokens=True).strip() for x in generate_ids(model, tokenizer, prompts, **kwargs)
    ]


class Generator:
    """A finished causal-lm run, ready to answer prompts."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any, tokenizer: Any):
        self.run_dir, self.manifest, self.model, self.tokenizer = run_dir, manifest, model, tokenizer
        self.format = manifest.get("generation", {}).get("format", "chat")
        self.max_length = int(manifest["max_length"])

    def _prompt_ids(self, prompt: str | list[dict[str, str]], system: str | None = None) -> list[int]:
        from tunesmith.tasks.causal_lm import prompt_ids

        if isinstance(prompt, str) and self.format == "chat":
            prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and self.format != "chat":
            raise InputError(f"this model was tuned on {self.format} data: give a prompt string, not messages")
        return prompt_ids(self.tokenizer, prompt)

    def generate(
        self,
        prompts: str | list[dict[str, str]] | list[str | list[dict[str, str]]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        system: str | None = None,
        seed: int | None = None,
        batch_size: int = 16,
    ) -> str | list[str]:
        """Answer one prompt (a string, or a list of chat messages) or a list of prompts. temperature 0 is
        greedy; otherwise sampling with top-p. Stops at the end of the assistant's turn."""
        single = isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict))
        batch = [prompts] if single else list(prompts)
        ids = [self._prompt_ids(p, system) for p in batch]
        texts = generate_texts(
            self.model,
            self.tokenizer,
            ids,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed,
        )
        return texts[0] if single else texts

    def stream(
        self,
        prompt: str | list[dict[str, str]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        system: str | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece as it is generated."""
        import torch
        from transformers import TextIteratorStreamer

        ids = torch.tensor([self._prompt_ids(prompt, system)], dtype=torch.long)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if seed is not None:
            torch.manual_seed(seed)
        stops = stop_token_ids(self.tokenizer)
        kwargs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": max_new_tokens,
            "eos_token_id": stops,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else stops[0],
            "streamer": streamer,
            **_sampling(temperature, top_p),
        }
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise errors[0]

    def read_prompts(self, path: str | Path) -> tuple[list[Any], list[dict[str, Any]]]:
        """Prompts of a JSONL file: ``{"prompt": "..."}`` or ``{"messages": [...]}`` per line (a trailing
        assistant turn, if any, is left out: it is the reference)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: cannot be read as UTF-8 text ({exc})") from None
        prompts, rows, problems = [], [], []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem("error", "not_json", f"not valid JSON: {exc.msg}", str(p), i))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem("error", "not_object", "expected a JSON object", str(p), i))
                continue
            prompt = _prompt_field(obj)
            if prompt is None:
                problems.append(
                    Problem(
                        "error", "missing_prompt", "expected a non-empty 'prompt' string or 'messages' list", str(p), i
                    )
                )
                continue
            prompts.append(prompt)
            rows.append(obj)
        if problems:
            raise DataError(problems)
        if not prompts:
            raise DataError([Problem("error", "empty_file", "no prompts in the file", str(p))])
        return prompts, rows

    def predict_file(self, input_file: str | Path, output_file: str | Path, **kwargs: Any) -> int:
        out = Path(output_file)
        if out.suffix.lower() != ".jsonl":
            raise InputError(f"--output {out}: generation writes JSONL (.jsonl)")
        prompts, rows = self.read_prompts(input_file)
        texts = self.generate(prompts, **kwargs)
        records = [{**row, "completion": t} for row, t in zip(rows, texts)]
        atomic_write_bytes(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
        return len(records)

    def evaluate_file(self, path: str | Path, max_new_tokens: int = 128, limit: int = 64) -> dict[str, Any]:
        """Loss and perplexity on the answers of a file in the run's data format, and token F1 / ROUGE-L / exact
        match of greedy answers to up to ``limit`` of its prompts."""
        from tunesmith.data.conversations import read_split
        from tunesmith.data.validate import DataReport
        from tunesmith.eval.text_metrics import score_all
        from tunesmith.tasks.causal_lm import (
            PACK_MIN,
            _item,
            make_collate,
            prompt_ids,
            prompt_of,
            render,
            validation_loss,
        )

        report = DataReport()
        examples, _, _ = read_split(str(path), self.format, report)
        if report.errors or examples is None or not len(examples):
            raise DataError(report.errors or [Problem("error", "empty_file", "no usable examples", str(path))])
        items = []
        for record, line in zip(examples.inputs, examples.lines):
            ids, mask = render(self.tokenizer, record)
            items.append(_item(ids[: self.max_length], mask[: self.max_length], line, record))
        pad = self.tokenizer.pad_token_id or 0
        loss, tokens = validation_loss(self.model, items, make_collate(pad, max(self.max_length, PACK_MIN), True), 32)
        pairs = [p for r in examples.inputs if (p := prompt_of(r)) is not None][:limit]
        out: dict[str, Any] = {"n": len(items), "loss": loss, "perplexity": float(np.exp(min(loss, 50.0)))}
        out["answer_tokens"] = tokens
        if pairs:
            texts = generate_texts(
                self.model,
                self.tokenizer,
                [prompt_ids(self.tokenizer, p) for p, _ in pairs],
                max_new_tokens=max_new_tokens,
            )
            scores = score_all(texts, [r for _, r in pairs], ("token_f1", "rouge_l", "exact_match"))
            out.update({k: float(np.mean(v)) for k, v in scores.items()})
            out["n_generated"] = len(pairs)
        return out

    def parity_check(self) -> Any:
        """Greedy outputs on the golden held-out prompts the run was evaluated on."""
        from tunesmith.tasks.causal_lm import greedy_parity

        path = self.run_dir / "validation_generations.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        prompts = [json.loads(line)["prompt"] for line in lines[:16]]
        if not prompts:  # plain-text runs: the opening of held-out documents
            from tunesmith.data.conversations import read_split
            from tunesmith.data.validate import DataReport

            val = self.manifest["data"].get("validation") or self.manifest["data"]["train"]
            examples, _, _ = read_split(val, "text", DataReport())
            prompts = [r["text"][:200] for r in (examples.inputs if examples else [])[:16]]
        if not prompts:
            raise InputError(f"{self.run_dir}: no held-out prompts to check a merge against")
        return greedy_parity(self.tokenizer, prompts)


def _prompt_field(obj: dict[str, Any]) -> Any:
    if isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
        return obj["prompt"]
    msgs = obj.get("messages")
    if isinstance(msgs, list) and msgs and all(isinstance(m, dict) for m in msgs):
        if msgs[-1].get("role") == "assistant":
            msgs = msgs[:-1]
        if msgs and all(
            isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant") for m in msgs
        ):
            return [{"role": m["role"], "content": m["content"]} for m in msgs]
    return None


def load_generator(run: Path, manifest: dict[str, Any]) -> Generator:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = manifest["export"]
    if export.get("path"):
        folder = run / export["path"]
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    else:
        from peft import PeftModel

        folder = run / export["adapter"]
        base = AutoModelForCausalLM.from_pretrained(
            manifest["base_model"]["path"], use_safetensors=True, dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return Generator(run, manifest, model, tokenizer)
