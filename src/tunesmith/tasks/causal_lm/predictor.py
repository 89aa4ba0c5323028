"""The Generator a finished causal-lm run loads into (``tunesmith.load(run).generate(...)``): batched or streamed
answers, prediction files, evaluation on a file, per-example answer losses for the promotion gate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.conversations import read_split
from tunesmith.data.readers import parse_jsonl
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.eval.compare import bootstrap_mean_interval
from tunesmith.eval.text_metrics import score_all
from tunesmith.files import read_jsonl, write_jsonl
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.inference.outputs import check_output
from tunesmith.inference.weights import load_trained
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.causal_lm.decoding import (
    decoding_options,
    generate_ids,
    generate_texts,
    greedy_parity,
)
from tunesmith.tasks.causal_lm.loss import answer_items, answer_loss
from tunesmith.tasks.causal_lm.rendering import prompt_ids, prompt_of


@PREDICTORS.register("causal-lm")
class Generator(Predictor):
    """A finished causal-lm run, ready to answer prompts."""

    generates = True

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any, tokenizer: Any):
        self.run_dir, self.manifest, self.model, self.tokenizer = run_dir, manifest, model, tokenizer
        self.format = manifest.get("generation", {}).get("format", "chat")
        self.max_length = int(manifest["max_length"])
        self.pad_id = tokenizer.pad_token_id or 0
        self.knowledge = _knowledge_base(run_dir, manifest)  # retrieval before answering, when trained with one
        self.k = int((manifest.get("knowledge_base") or {}).get("k", 3))
        self._base: Any = None  # the general model, loaded when first asked (complete_base)

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> Generator:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        def full(folder: Path) -> Any:
            return AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)

        def base(path: str) -> Any:
            return full(Path(path))

        model, folder = load_trained(run, manifest, full, base)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(run, manifest, model, tokenizer)

    def ground(self, prompt: str | list[dict[str, str]]) -> tuple[Any, list[Any]]:
        """The prompt as the model was trained to read it: the knowledge base's chunks nearest its question put
        before it (knowledge/raft.py), and those chunks (the sources). Unchanged, with no sources, without a
        knowledge base."""
        if self.knowledge is None:
            return prompt, []
        from tunesmith.knowledge.raft import question_of, rewrite

        record = {"prompt": prompt} if isinstance(prompt, str) else {"messages": prompt}
        question = question_of(record)
        if not question:
            return prompt, []
        hits = self.knowledge.search([question], self.k)[0]
        grounded = rewrite(record, hits)
        return (grounded["prompt"] if isinstance(prompt, str) else grounded["messages"]), hits

    def _prompt_ids(self, prompt: str | list[dict[str, str]], system: str | None = None) -> list[int]:
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
        stop: threading.Event | None = None,
        retrieve: bool = True,
    ) -> str | list[str]:
        """Answer one prompt (a string, or a list of chat messages) or a list of prompts. temperature 0 is
        greedy; otherwise sampling with top-p. Stops at the end of the assistant's turn. A model trained with a
        knowledge base reads its retrieved chunks first (``retrieve=False``: the prompt as it is)."""
        single = isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict))
        batch = [prompts] if single else list(prompts)
        if retrieve:
            batch = [self.ground(p)[0] for p in batch]
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
            stop=stop,
        )
        return texts[0] if single else texts

    def complete(
        self,
        prompt: str | list[dict[str, str]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        system: str | None = None,
        seed: int | None = None,
        stop: threading.Event | None = None,
        retrieve: bool = True,
    ) -> dict[str, Any]:
        """One answer with what it cost: ``text``, ``prompt_tokens``, ``completion_tokens`` and ``finish_reason``
        ("length" when it used every one of ``max_new_tokens`` without ending its turn, else "stop"); with a
        knowledge base also ``sources``, the chunks it was given."""
        hits: list[Any] = []
        if retrieve:
            prompt, hits = self.ground(prompt)
        ids = self._prompt_ids(prompt, system)
        (out,) = generate_ids(self.model, self.tokenizer, [ids], max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, seed=seed, stop=stop)  # fmt: skip
        return {
            "text": self.tokenizer.decode(out, skip_special_tokens=True).strip(),
            "prompt_tokens": len(ids),
            "completion_tokens": len(out),
            "finish_reason": "length" if len(out) >= max_new_tokens else "stop",
            **({"sources": [h.to_dict() for h in hits]} if self.knowledge is not None else {}),
        }

    def complete_base(self, prompt: str | list[dict[str, str]], **options: Any) -> dict[str, Any]:
        """``complete`` by the general model this run was tuned from, on the same (grounded) prompt: the adapter
        switched off for a LoRA run, else the pre-trained weights loaded once (checked as an adapter's base is)."""
        tuned = self.model
        if hasattr(tuned, "disable_adapter"):
            with tuned.disable_adapter():
                return self.complete(prompt, **options)
        if self._base is None:
            import torch
            from transformers import AutoModelForCausalLM

            from tunesmith.inference.weights import base_model_path

            folder = base_model_path(self.manifest)
            self._base = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32).eval()
        self.model = self._base
        try:
            return self.complete(prompt, **options)
        finally:
            self.model = tuned

    def count_tokens(self, prompt: str | list[dict[str, str]], system: str | None = None) -> int:
        """Tokens of a prompt as the model reads it (chat template included)."""
        return len(self._prompt_ids(prompt, system))

    def count_answer_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(
        self,
        prompt: str | list[dict[str, str]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        system: str | None = None,
        seed: int | None = None,
        stop: threading.Event | None = None,
        retrieve: bool = True,
    ) -> Iterator[str]:
        """Yield the answer piece by piece as it is generated. Closing the iterator early (or setting ``stop``)
        ends the generation within a token and waits for it, so the model is free when this returns. With a
        knowledge base the prompt is grounded first (``ground`` gives the sources; then pass ``retrieve=False``)."""
        import torch
        from transformers import TextIteratorStreamer

        if retrieve:
            prompt = self.ground(prompt)[0]
        ids = torch.tensor([self._prompt_ids(prompt, system)], dtype=torch.long)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = stop or threading.Event()
        if seed is not None:
            torch.manual_seed(seed)
        kwargs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "streamer": streamer,
            **decoding_options(self.tokenizer, max_new_tokens, temperature, top_p, stop),
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
        try:
            yield from streamer
        finally:  # the end of the answer, an error, or a consumer that stopped reading
            stop.set()
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
        prompts, rows = [], []
        parsed, problems = parse_jsonl(str(p), text)
        for i, obj in parsed:
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
        out = check_output(output_file, (".jsonl",))
        prompts, rows = self.read_prompts(input_file)
        grounded = [self.ground(p) for p in prompts]
        texts = self.generate([g for g, _ in grounded], retrieve=False, **kwargs)
        write_jsonl(out, [
            {**row, "completion": t, **({"sources": [h.to_dict() for h in hits]} if self.knowledge else {})}
            for row, t, (_, hits) in zip(rows, texts, grounded)
        ])  # fmt: skip
        return len(rows)

    def save_preprocessor(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def _items(self, records: list[dict[str, Any]], lines: list[int]) -> list[dict[str, Any]]:
        return answer_items(self.tokenizer, records, lines, self.max_length)

    def _grounded(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Held-out records as the model reads them in use: with a knowledge base, each question given its
        retrieved chunks."""
        if self.knowledge is None:
            return records
        from tunesmith.knowledge.raft import retrieved, rewrite

        return [rewrite(r, hits) for r, hits in zip(records, retrieved(self.knowledge, records, self.k))]

    def evaluate_file(self, path: str | Path, max_new_tokens: int = 128, limit: int = 64) -> dict[str, Any]:
        """Loss and perplexity on the answers of a file in the run's data format, and token F1 / ROUGE-L / exact
        match of greedy answers to up to ``limit`` of its prompts."""
        report = DataReport()
        examples, fmt, _ = read_split(str(path), "auto", report)
        if examples is not None and fmt != self.format:
            report.add("error", "format", f"this is {fmt} data; the model was tuned on {self.format} data", str(path))
        if report.errors or examples is None or not len(examples):
            raise DataError(report.errors or [Problem("error", "empty_file", "no usable examples", str(path))])
        records = self._grounded(examples.inputs)  # retrieval once, for the loss and the written answers
        items = self._items(records, examples.lines)
        loss, tokens = answer_loss(self.model, items, self.pad_id, self.max_length, 32)
        pairs = [p for r in records[:limit] if (p := prompt_of(r)) is not None]
        out: dict[str, Any] = {"n": len(items), "loss": loss, "perplexity": float(np.exp(min(loss, 50.0)))}
        out["answer_tokens"] = tokens
        if pairs:
            prompts = [prompt_ids(self.tokenizer, p) for p, _ in pairs]
            texts = generate_texts(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens)
            scores = score_all(texts, [r for _, r in pairs], ("token_f1", "rouge_l", "exact_match"))
            out.update({k: float(np.mean(v)) for k, v in scores.items()})
            out["intervals"] = {k: list(bootstrap_mean_interval(v, 1000, 0.95)) for k, v in scores.items()}
            out["n_generated"] = len(pairs)
        return out

    def example_scores(self, examples: Examples) -> np.ndarray:
        """Mean loss per answer token of each example (examples without answer tokens left out)."""
        losses = []
        for item in self._items(self._grounded(examples.inputs), examples.lines):
            loss, tokens = answer_loss(self.model, [item], self.pad_id, self.max_length, 1)
            if tokens:
                losses.append(loss)
        return np.asarray(losses, dtype=float)

    def parity_check(self) -> ParityCheck:
        """Greedy outputs on the golden held-out prompts the run was evaluated on."""
        path = self.run_dir / "validation_generations.jsonl"
        prompts = [r["prompt"] for r in read_jsonl(path)[:16]] if path.is_file() else []
        if not prompts:  # plain-text runs: the opening of held-out documents
            val = self.manifest["data"].get("validation") or self.manifest["data"]["train"]
            examples, _, _ = read_split(val, "auto", DataReport())
            prompts = [r["text"][:200] for r in (examples.inputs if examples else [])[:16]]
        if not prompts:
            raise InputError(f"{self.run_dir}: no held-out prompts to check a merge against")
        return greedy_parity(self.tokenizer, prompts)


def _knowledge_base(run: Path, manifest: dict[str, Any]) -> Any:
    """The knowledge base a run was trained with (its folder, as recorded), or None. Its current build is used:
    documents change, and a rebuilt knowledge base is what retrieval should read."""
    info = manifest.get("knowledge_base")
    if not info:
        return None
    from tunesmith.knowledge.base import META, KnowledgeBase

    folder = Path(info["path"])
    if not (folder / META).is_file():
        raise InputError(
            f"{run}: trained with the knowledge base {info['name']} at {folder}, which is gone; rebuild it there "
            "(tunesmith kb build ... --name NAME) or check out its registered version"
        )
    return KnowledgeBase(folder)


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
