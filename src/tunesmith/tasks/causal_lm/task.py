"""Causal-LM fine-tuning: instruction / chat tuning and continued pre-training of decoder language models.

Examples are rendered to token ids with a per-token loss mask: the tokenizer's chat template formats chats and
only assistant tokens (each turn's answer and its end-of-turn token) carry loss; prompt/completion pairs train
on the completion; plain text trains on every token. Batches are packed into rows (examples isolated from
each other by restarting position ids, which transformers turns into a block-diagonal causal mask), and the
vocabulary projection runs only at the positions whose next token carries loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.conversations import check_generation_data, describe_lines, read_split
from tunesmith.data.split import add_replay, carve_selection, limit_and_split
from tunesmith.data.validate import DataReport, Examples, settle_max_length
from tunesmith.errors import ConfigError, DataError, InputError
from tunesmith.methods.base import Judge, ParityCheck
from tunesmith.methods.training import UNTOUCHED
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks.base import TASKS, Prepared, Task, TaskData
from tunesmith.tasks.causal_lm.decoding import generate_texts, greedy_parity, stop_token_ids
from tunesmith.tasks.causal_lm.knowledge import with_knowledge
from tunesmith.tasks.causal_lm.loss import (
    PACK_MIN,
    answer_item,
    make_collate,
    token_count,
    token_loss,
    validation_loss,
)
from tunesmith.tasks.causal_lm.rendering import prompt_ids, prompt_of, render
from tunesmith.tasks.causal_lm.templates import apply_chat_template_choice
from tunesmith.train import meter
from tunesmith.train.result import FitResult

MAX_LENGTH_CAP = 2048  # default ceiling on CPU-sized runs; train.max_length may go up to the model's limit


@dataclass
class GenerationData(TaskData):
    """Read data plus, once the inputs are checked, the training items of each split (rendered, cut to
    max_length by the truncation policy)."""

    items: dict[str, list[dict[str, Any]]] | None = None


@dataclass(kw_only=True)
class GenerationPrepared(Prepared):
    tokenizer: Any
    golden: list[tuple[Any, str, int]]  # held-out (prompt, reference, line) answered at evaluation
    choice_golden: list[tuple[Any, str, int]] = field(default_factory=list)  # selection-split prompts (the choice)


# Selection-split prompts the base and the tuned model answer to decide which one the run keeps: the held-out
# evaluation's sample size (eval.generate_examples' default); a few minutes at most on 2 CPU cores.
CHOICE_PROMPTS = 32


@TASKS.register("causal-lm")
class CausalLM(Task):
    """Inputs are conversations, prompt/completion pairs or documents; the model learns to write the answers."""

    name = "causal-lm"
    peft_task_type = "CAUSAL_LM"
    # Packed rows of a 576-wide model make many 1-4 MB activations: with fit()'s default 1 MiB glibc mmap
    # threshold each one is a fresh mmap and page faults (SmolLM2 LoRA: 127 against 222-243 tokens/s at 4-16 MiB).
    mmap_threshold = 16 << 20
    epoch_rule = (80, 1, 4)  # optimizer steps; language models memorise their training answers quickly
    learning_rates = {
        "full": [(200e6, 5e-5), (1e9, 2e-5), (math.inf, 1e-5)],
        "lora": [(1e9, 5e-4), (math.inf, 2e-4)],
    }
    lora_targets_per_layer = 7
    vocabulary_logits = True
    generates_at_evaluation = True
    gate_metric = "loss"
    gate_lower_is_better = True

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        if cfg.lora.warm_start_head or cfg.full.warm_start_head:
            raise ConfigError("warm_start_head: applies to classification heads only; causal-lm has none")

    @classmethod
    def method_preference(cls, n_train: int, classes: int = 2) -> tuple[list[str], str]:
        return ["lora", "full"], (
            "adapters keep the base model's general skills and train well on small instruction sets; "
            "full fine-tuning changes every weight and forgets more"
        )

    # --- data -------------------------------------------------------------------------------
    def read(self) -> GenerationData:
        d, report = self.cfg.data, DataReport()
        select = None
        train, fmt, fp_train = read_split(d.train, d.format, report)
        val, fp_val = None, ""
        if d.validation is not None:
            val, val_fmt, fp_val = read_split(d.validation, d.format, report)
            if train is not None and val is not None and val_fmt != fmt:
                report.add("error", "format", f"validation data is {val_fmt} but training data is {fmt}", d.validation)
        if train is not None and len(train):
            train, val = limit_and_split(train, val, d, self.cfg.train.seed, report, "examples")
            train, select = carve_selection(train, d, self.cfg.train.seed, report, "examples")
            train = add_replay(
                train, d, self.cfg.train.seed, report, lambda p: read_split(p, d.format, report)[0], "examples"
            )
            check_generation_data(train if select is None else train.concat(select), val, report, d.min_examples)
        elif train is not None:
            report.add("error", "empty_file", "no usable training examples", train.source)
        report.stats["format"] = fmt
        if report.errors:
            raise DataError(report.problems)
        assert train is not None and val is not None
        fingerprint = "+".join(f[:16] for f in (fp_train, fp_val) if f)
        if d.knowledge_base:
            train, select, val, kb_fp = with_knowledge(self.cfg, fmt, train, select, val, report)
            fingerprint += f"+kb{kb_fp}"
        return GenerationData(train, val, report, fingerprint, format=fmt, select=select)

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Any:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source.path, trust_remote_code=self.cfg.trust_remote_code)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        if self.cfg.chat_template:
            apply_chat_template_choice(tok, self.cfg.chat_template)
        if data.format == "chat" and not getattr(tok, "chat_template", None):
            raise ConfigError(
                f"model: {source.spec}'s tokenizer has no chat template, so chat data cannot be formatted; set "
                "chat_template (plain, chatml, or a Jinja file), use a chat model, or prompt/completion data"
            )
        return tok

    def check_inputs(self, preprocessor: Any, data: TaskData) -> int:
        """Render every example once; choose max_length; apply the truncation policy; count tokens. The items
        of each split go into ``data.items``."""
        assert isinstance(data, GenerationData)
        tokenizer, train, val, report = preprocessor, data.train, data.val, data.report
        limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
        limit = limit if 0 < limit < 1_000_000 else MAX_LENGTH_CAP
        splits = [("train", train), ("validation", val)]
        if data.select is not None:
            splits.append(("selection", data.select))
        rendered = {split: [render(tokenizer, r) for r in ex.inputs] for split, ex in splits}
        lengths = [len(ids) for ids, _ in rendered["train"] + rendered.get("selection", [])]
        max_length = settle_max_length(self.cfg.train.max_length, lengths, limit, report, MAX_LENGTH_CAP)
        data.items = {}
        stats = {}
        for split, ex in splits:
            # With a selection split, the training data's warnings and figures come from the union below.
            said = DataReport() if data.select is not None and split != "validation" else report
            items, split_stats = self._fit_to_length(rendered[split], ex, max_length, said, data.format)
            data.items[split] = items
            stats[split] = split_stats
        if data.select is not None:  # the checks speak of the training data as given: the selection put back
            union = rendered["train"] + rendered["selection"]
            _, stats["train"] = self._fit_to_length(union, data.all_train, max_length, report, data.format)
        report.stats["tokens"] = stats
        if self.cfg.train.epochs is not None:  # else once the data-driven default is chosen (finetune)
            self.bill_tokens(report, self.cfg)
        if len(data.items["train"]) < self.cfg.data.min_examples or not data.items["validation"]:
            report.add(
                "error",
                "too_few_examples",
                f"after the truncation policy, {len(data.items['train'])} training and "
                f"{len(data.items['validation'])} validation examples are left "
                f"(at least {self.cfg.data.min_examples} and 1 needed)",
                train.source,
            )
            raise DataError(report.problems)
        return max_length

    def _fit_to_length(
        self,
        rendered: list[tuple[list[int], list[bool]]],
        ex: Examples,
        max_length: int,
        report: DataReport,
        fmt: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        policy = self.cfg.data.truncation
        items, too_long, lost = [], [], []
        for (ids, mask), line, record in zip(rendered, ex.lines, ex.inputs):
            if len(ids) > max_length:
                too_long.append(line)
                if "text" in record:  # a document: split it into pieces of max_length tokens
                    for s in range(0, len(ids), max_length):
                        if len(ids[s : s + max_length]) > 1:
                            items.append(answer_item(ids[s : s + max_length], mask[s : s + max_length], line))
                    continue
                if policy == "drop":
                    lost.append(line)
                    continue
                ids, mask = ids[:max_length], mask[:max_length]
                if not any(mask[1:]):
                    lost.append(line)
                    continue
            items.append(answer_item(ids, mask, line))
        if too_long:
            kind = "document" if fmt == "text" else "example"
            if fmt == "text":
                what = f"split into pieces of {max_length} tokens"
            elif policy == "drop":
                what = "left out (data.truncation: drop)"
            else:
                what = (
                    f"cut to their first {max_length} tokens (data.truncation: truncate); {len(lost)} lost every "
                    "answer token and were left out"
                )
            report.add(
                "warning",
                "too_long",
                f"{len(too_long)} {kind}(s) are longer than max_length={max_length} tokens "
                f"({describe_lines(too_long)}): {what}. Raise train.max_length to keep them whole",
                ex.source,
                too_long[0],
            )
        total = [len(ids) for ids, _ in rendered]
        kept = [len(it["input_ids"]) for it in items]
        stats = {
            "examples": len(rendered),
            "tokens": int(sum(total)),
            "answer_tokens": int(sum(int(np.sum(m)) for _, m in rendered)),
            "mean": round(float(np.mean(total)), 1) if total else 0.0,
            "p95": int(np.percentile(total, 95)) if total else 0,
            "max": int(max(total)) if total else 0,
            "longer_than_max_length": len(too_long),
            "left_out": len(lost),
            "trained_tokens": int(sum(kept)),
        }
        return items, stats

    # --- model ------------------------------------------------------------------------------
    def training_lengths(self, preprocessor: Any, data: TaskData, input_size: int) -> dict[str, list[int]]:
        """check_inputs rendered and cut every example already."""
        assert isinstance(data, GenerationData) and data.items is not None
        return {name: [len(it["input_ids"]) for it in items] for name, items in data.items.items()}

    def row_capacity(self, input_size: int) -> int | None:
        return max(input_size, PACK_MIN) if self.cfg.train.packing else None

    def bill_tokens(self, report: DataReport, cfg: Config) -> None:
        """Training tokens x epochs, as hosted fine-tuning APIs bill them, once the epochs are known."""
        tokens = report.stats.get("tokens", {})
        if "train" in tokens:
            tokens["billable_training_tokens"] = tokens["train"]["tokens"] * cfg.train.epochs

    def build_model(self, source: ModelSource, data: TaskData) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        if source.local and not any(Path(source.path).glob("*.safetensors")) and not self.cfg.trust_remote_code:
            raise InputError(
                f"model: {source.path} has no .safetensors weights; pickled weights are refused "
                "(convert them with safetensors first)"
            )
        return AutoModelForCausalLM.from_pretrained(
            source.path,
            dtype=torch.float32,
            trust_remote_code=self.cfg.trust_remote_code,
            use_safetensors=None if self.cfg.trust_remote_code or not source.local else True,
        )

    def lora_targets(self, model: Any) -> list[str] | None:
        """Every linear layer inside the decoder blocks (attention and MLP), not the output projection: the
        usual choice for instruction tuning, and the module names come from the model itself. Models without
        nn.Linear layers (GPT-2's Conv1D) get PEFT's own default for their architecture."""
        import torch

        head = model.get_output_embeddings()
        names = {
            name.rsplit(".", 1)[-1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and mod is not head
        }
        return sorted(names) or None

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return token_loss(model, batch)

    # --- the finetune() hooks -----------------------------------------------------------------------
    def prepare(self, preprocessor: Any, data: TaskData, input_size: int) -> GenerationPrepared:
        assert isinstance(data, GenerationData) and data.items is not None
        tokenizer = preprocessor
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        collate = make_collate(pad_id, max(input_size, PACK_MIN), self.cfg.train.packing)
        train_items = data.items["train"]
        # Packing fills rows best from mixed lengths; grouping by length only helps when each example is a row.
        lengths = None if self.cfg.train.packing else [len(it["input_ids"]) for it in train_items]
        return GenerationPrepared(
            train_items=train_items,
            val_items=data.items["validation"],
            select_items=data.items.get("selection") or None,
            lengths=lengths,
            collate=collate,
            pad_id=pad_id,
            input_size=input_size,
            data=data,
            tokenizer=tokenizer,
            golden=_golden(data.val, self.cfg.eval.generate_examples, self.cfg.train.seed),
            choice_golden=[] if data.select is None else _golden(data.select, CHOICE_PROMPTS, self.cfg.train.seed),
        )

    def _validation_loss(
        self, model: Any, prep: GenerationPrepared, choice: bool = False, rows: list[tuple[float, int]] | None = None
    ) -> tuple[float, int]:
        """Mean answer-token loss on the validation data, or (``choice``) on the selection split."""
        items, split = (prep.choice_items, "selection") if choice else (prep.val_items, "validation")
        collate = make_collate(prep.pad_id, max(prep.input_size, PACK_MIN), True)
        with meter.measure("forward", split, len(items), token_count(items)):
            return validation_loss(model, items, collate, self.cfg.eval.batch_size, rows)

    def evaluator(self, prep: Any) -> Any:
        """Loss during training, on the selection split (the validation data when none was carved)."""

        def evaluate(m: Any) -> dict[str, float]:
            loss, _ = self._validation_loss(m, prep, choice=True)
            return {"loss": loss, "perplexity": float(np.exp(min(loss, 50.0)))}

        return evaluate

    def _budget(self, prep: GenerationPrepared, golden: list[tuple[Any, str, int]]) -> int:
        """New tokens per generated answer: twice the longest reference (at least 16), at most eval.max_new_tokens."""
        tok = prep.tokenizer
        refs = [len(tok(r, add_special_tokens=False)["input_ids"]) for _, r, _ in golden] or [0]
        return min(self.cfg.eval.max_new_tokens, max(16, 2 * max(refs)))

    def _generate(
        self, model: Any, prep: GenerationPrepared, golden: list[tuple[Any, str, int]], budget: int, split: str
    ) -> list[str]:
        if not golden:
            return []
        tok = prep.tokenizer
        prompts = [prompt_ids(tok, p) for p, _, _ in golden]
        shown = "held-out" if split == "validation" else split
        with meter.measure("generate", split, len(prompts)):
            return generate_texts(
                model, tok, prompts, max_new_tokens=budget, batch_size=16, progress=f"{shown} answers"
            )

    def _measure(self, model: Any, prep: GenerationPrepared) -> dict[str, Any]:
        rows: list[tuple[float, int]] = []
        loss, tokens = self._validation_loss(model, prep, rows=rows)
        budget = self._budget(prep, prep.golden) if prep.golden else 0
        return {
            "loss": loss,
            "tokens": tokens,
            "rows": rows,
            "outputs": self._generate(model, prep, prep.golden, budget, "validation"),
            "max_new_tokens": budget,
        }

    def _choice(self, model: Any, prep: GenerationPrepared) -> dict[str, float]:
        """A model's selection loss and the token F1 of its answers to the selection split's prompts: what the run
        keeps the tuned model or the base model by (its loss falls in training whether or not its answers improve)."""
        from tunesmith.eval.text_metrics import token_f1

        golden = prep.choice_golden
        answers = self._generate(model, prep, golden, self._budget(prep, golden), "selection")
        loss, _ = self._validation_loss(model, prep, choice=True)
        return {"loss": loss, "token_f1": float(np.mean([token_f1(a, r) for a, (_, r, _) in zip(answers, golden)]))}

    def before_training(self, model: Any, prep: Any, source: ModelSource, main: bool) -> Any:
        """The base model's validation loss and its answers to the golden prompts, before any weight changes; with
        a selection split, its answers to those prompts too (the figures fine-tuning must beat to be kept)."""
        if not main:
            return None
        base = self._measure(model, prep)
        if prep.choice_golden:
            base["choice"] = self._choice(model, prep)
        return base

    def untouched_choice(self, baseline: Any) -> dict[str, float] | None:
        return (baseline or {}).get("choice")

    def untouched_judge(self, prep: Any) -> Judge | None:
        if not prep.choice_golden:
            return None
        return Judge("token_f1", lambda model: self._choice(model, prep))

    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Any, baseline: Any, report: DataReport, fit: FitResult
    ) -> dict[str, Any]:
        from tunesmith.eval.report_generation import build_generation_report

        tuned = baseline if kept_base(fit.kept) else self._measure(model, prep)  # the kept base model answers as it did
        return build_generation_report(
            run, cfg=cfg, base=baseline, tuned=tuned, golden=prep.golden, report=report, fit=fit,
            grounded=bool(cfg.data.knowledge_base),
        )  # fmt: skip

    def parity_check(self, prep: Any) -> ParityCheck:
        """Golden prompts: the held-out prompts, or for plain text the opening of held-out documents."""
        prompts = [p for p, _, _ in prep.golden[:16]]
        if not prompts:
            prompts = [r["text"][:200] for r in prep.data.val.inputs[:16] if "text" in r]
        return greedy_parity(prep.tokenizer, prompts)

    def manifest_extras(self, prep: Any) -> dict[str, Any]:
        tok, fmt = prep.tokenizer, prep.data.format
        kb = prep.data.report.stats.get("knowledge_base")
        return {
            **({"knowledge_base": {k: kb[k] for k in ("name", "path", "build", "fingerprint", "k")}} if kb else {}),
            "data": {"format": fmt},
            "generation": {
                "format": fmt,
                "chat_template": bool(getattr(tok, "chat_template", None)),
                "stop_token_ids": stop_token_ids(tok),
                "packing": self.cfg.train.packing,
            },
        }

    @staticmethod
    def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
        m = manifest["metrics"]
        out = [f"\n{m['verdict']['text']}"] if m.get("verdict") else []
        out += [f"\n{'model':<10}{'val loss':>10}{'perplexity':>12}{'token F1':>10}{'ROUGE-L':>9}"]
        base_kept = kept_base(manifest.get("kept"))
        for name in ("base", "tuned"):
            r = m[name]
            name = "kept base" if name == "tuned" and base_kept else name
            f1 = f"{r['token_f1'] * 100:>9.1f}%" if r.get("token_f1") is not None else f"{'-':>10}"
            rl = f"{r['rouge_l'] * 100:>8.1f}%" if r.get("rouge_l") is not None else f"{'-':>9}"
            out.append(f"{name:<10}{r['loss']:>10.3f}{r['perplexity']:>12.2f}{f1}{rl}")
        for metric, c in m.get("tuned_minus_base", {}).items():
            out.append(
                f"tuned - base: {metric} {c['difference'] * 100:+.1f} points "
                f"(95% CI {c['ci_low'] * 100:+.1f} .. {c['ci_high'] * 100:+.1f})"
            )
        out.append(
            f"n = {m['n_loss_tokens']} held-out answer tokens, {m['n_generated']} prompts generated; "
            f"report: {Path(run_dir) / 'report.html'}"
        )
        return out


def _golden(val: Examples, n: int, seed: int) -> list[tuple[Any, str, int]]:
    """Up to n held-out (prompt, reference, line) triples, a seeded sample kept in file order."""
    pairs = [(p[0], p[1], ln) for r, ln in zip(val.inputs, val.lines) if (p := prompt_of(r)) is not None]
    if len(pairs) <= n:
        return pairs
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=n, replace=False))]


def kept_base(kept: dict[str, Any] | None) -> bool:
    """Whether a run's ``kept`` record (FitResult.kept, manifest["kept"]) says it kept the untouched base model."""
    return (kept or {}).get("model") == UNTOUCHED[0]
