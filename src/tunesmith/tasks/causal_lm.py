"""Causal-LM fine-tuning: instruction / chat tuning and continued pre-training of decoder language models.

Examples are rendered to token ids with a per-token loss mask: the tokenizer's chat template formats chats and
only assistant tokens (each turn's answer and its end-of-turn token) carry loss; prompt/completion pairs train
on the completion; plain text trains on every token. Batches are packed into rows (examples isolated from
each other by restarting position ids, which transformers turns into a block-diagonal causal mask), and the
vocabulary projection runs only at the positions whose next token carries loss.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.conversations import check_generation_data, describe_lines, read_split
from tunesmith.data.split import add_replay, limit_and_split
from tunesmith.data.validate import DataReport, Examples, settle_max_length
from tunesmith.errors import ConfigError, DataError, InputError
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks import TASKS, Prepared
from tunesmith.train import meter

IGNORE = -100
MAX_LENGTH_CAP = 2048  # default ceiling on CPU-sized runs; train.max_length may go up to the model's limit
PACK_MIN = 256


# --- rendering: record -> token ids + loss mask ------------------------------------------------------------
def _apply_template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, carries_loss) pieces. Each assistant turn is what the template adds
    between the prompt for that turn (``add_generation_prompt=True``) and the conversation including it: the
    answer and its end-of-turn marker. Whitespace after the marker belongs to the prompt side."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = _apply_template(tokenizer, messages[:i], True)
        full = _apply_template(tokenizer, messages[: i + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ConfigError(
                "the tokenizer's chat template does not render conversations as growing prefixes, so answer "
                "tokens cannot be told apart; use prompt/completion data or another model"
            )
        answer = full[len(prompt) :]
        trailing = answer[len(answer.rstrip()) :]
        pieces.append((prompt[len(done) :], False))
        pieces.append((answer[: len(answer) - len(trailing)], True))
        done = full[: len(full) - len(trailing)]
    rest = _apply_template(tokenizer, messages, False)[len(done) :]
    if rest:
        pieces.append((rest, False))
    return [(t, loss) for t, loss in pieces if t]


def render(tokenizer: Any, record: dict[str, Any]) -> tuple[list[int], list[bool]]:
    """Token ids and, per token, whether it carries loss."""
    if "messages" in record:
        pieces = chat_segments(tokenizer, record["messages"])
        ids: list[int] = []
        mask: list[bool] = []
        for text, loss in pieces:
            part = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += part
            mask += [loss] * len(part)
        return ids, mask
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if "prompt" in record:
        prompt = tokenizer(record["prompt"], add_special_tokens=True)["input_ids"]
        answer = tokenizer(record["completion"], add_special_tokens=False)["input_ids"] + eos
        return prompt + answer, [False] * len(prompt) + [True] * len(answer)
    ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"] + eos
    return ids, [True] * len(ids)


def prompt_of(record: dict[str, Any]) -> tuple[Any, str] | None:
    """(prompt, reference answer) for generation at evaluation: the conversation up to its last assistant turn,
    or the prompt of a pair. Plain text has no prompt."""
    if "messages" in record:
        msgs = record["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        return msgs[:last], msgs[last]["content"]
    if "prompt" in record:
        return record["prompt"], record["completion"]
    return None


def prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """Token ids that make the model answer ``prompt`` (messages get the chat template's generation prompt)."""
    if isinstance(prompt, list):
        text = _apply_template(tokenizer, prompt, True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


# --- packing and the loss ---------------------------------------------------------------------------------
def pack_rows(lengths: list[int], capacity: int) -> tuple[list[list[int]], list[int]]:
    """Examples (by index) into as few rows as fit ``capacity`` tokens, filled evenly: rows are padded to the
    fullest one, so an even fill is what keeps padding small. First fit, longest first, into a width that
    starts at the even share and grows in steps of 8 only when something does not fit."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    longest, total = lengths[order[0]], sum(lengths)
    n_rows = -(-total // max(capacity, longest))
    width = max(longest, -(-total // n_rows))
    while True:
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        fill = [0] * n_rows
        for i in order:
            slot = next((r for r in range(n_rows) if fill[r] + lengths[i] <= width), None)
            if slot is None:
                break
            rows[slot].append(i)
            fill[slot] += lengths[i]
        else:
            return rows, fill
        if width < max(capacity, longest):
            width = min(width + 8, max(capacity, longest))
        else:
            n_rows += 1
            width = max(longest, -(-total // n_rows))


def make_collate(pad_id: int, capacity: int, packing: bool) -> Any:
    """Rows of examples for training. Each example's ``targets[t]`` is the next token when that token carries
    loss, else IGNORE. With packing, examples share rows (first fit, longest first) and restart their position
    ids, so none attends to another; without, each example is its own row, padded at the end."""
    import torch

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(it["input_ids"]) for it in items]
        rows, fill = pack_rows(lengths, capacity) if packing else ([[i] for i in range(len(items))], lengths)
        width = max(fill)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        pos = torch.arange(width, dtype=torch.long).repeat(len(rows), 1)
        targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for r, members in enumerate(rows):
            at = 0
            for i in members:
                x, m = items[i]["input_ids"], items[i]["loss_mask"]
                n = len(x)
                xt = torch.as_tensor(x, dtype=torch.long)
                ids[r, at : at + n] = xt
                pos[r, at : at + n] = torch.arange(n)
                nxt = torch.where(torch.as_tensor(m[1:], dtype=torch.bool), xt[1:], IGNORE)
                targets[r, at : at + n - 1] = nxt
                at += n
            if at < width:  # padding continues the last example's positions: it joins that block, after it
                last = pos[r, at - 1].item() if at else -1
                pos[r, at:] = torch.arange(last + 1, last + 1 + width - at)
        return {
            "input_ids": ids,
            "position_ids": pos,
            "targets": targets,
            "real_tokens": torch.tensor(sum(fill)),
        }

    return collate


def _unwrap(model: Any) -> Any:
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if hasattr(inner, "get_base_model"):  # PEFT
        inner = inner.get_base_model()
    return inner


@contextlib.contextmanager
def logits_only_at(model: Any, where: Any):
    """While active, the output projection sees only the hidden states at ``where`` (a bool mask over batch and
    positions), so vocabulary logits are computed (and kept for backward) only where the loss needs them. The
    model's forward runs as usual, so DDP and PEFT wrappers see an ordinary call."""
    head = _unwrap(model).get_output_embeddings()

    def select(_module: Any, args: tuple) -> tuple:
        return (args[0][where],)

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


def token_loss(model: Any, batch: dict[str, Any], reduction: str = "mean") -> Any:
    import torch.nn.functional as F

    targets = batch["targets"]
    where = targets != IGNORE
    with logits_only_at(model, where):
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets[where], reduction=reduction)


def validation_loss(model: Any, items: list[dict[str, Any]], collate: Any, batch_size: int) -> tuple[float, int]:
    """Mean loss per answer token over ``items`` (and the token count), in batches of similar length."""
    import torch

    device = next(model.parameters()).device
    order = np.argsort([-len(it["input_ids"]) for it in items], kind="stable")
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(items), batch_size):
            batch = collate([items[i] for i in order[s : s + batch_size]])
            batch.pop("real_tokens")
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["targets"] != IGNORE).sum())
            if n:
                total += float(token_loss(model, batch, reduction="sum"))
                count += n
    return (total / count if count else float("nan")), count


def _tokens(items: list[dict[str, Any]]) -> int:
    return sum(len(it["input_ids"]) for it in items)


@TASKS.register("causal-lm")
class CausalLM:
    """Inputs are conversations, prompt/completion pairs or documents; the model learns to write the answers."""

    name = "causal-lm"
    peft_task_type = "CAUSAL_LM"
    # Packed rows of a 576-wide model make many 1-4 MB activations: with fit()'s default 1 MiB glibc mmap
    # threshold each one is a fresh mmap and page faults (SmolLM2 LoRA: 127 against 222-243 tokens/s at 4-16 MiB).
    mmap_threshold = 16 << 20

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.format = cfg.data.format
        self.labels: list[str] = []
        if cfg.lora.warm_start_head or cfg.full.warm_start_head:
            raise ConfigError("warm_start_head: applies to classification heads only; causal-lm has none")

    # --- data -------------------------------------------------------------------------------
    def read(self) -> tuple[Examples, Examples, DataReport, str]:
        d, report = self.cfg.data, DataReport()
        train, fmt, fp_train = read_split(d.train, d.format, report)
        val, fp_val = None, ""
        if d.validation is not None:
            val, val_fmt, fp_val = read_split(d.validation, fmt if fmt != "auto" else d.format, report)
            if train is not None and val is not None and val_fmt != fmt:
                report.add("error", "format", f"validation data is {val_fmt} but training data is {fmt}", d.validation)
        self.format = fmt
        if train is not None and len(train):
            train, val = limit_and_split(train, val, d, self.cfg.train.seed, report, "examples")
            train = add_replay(
                train, d, self.cfg.train.seed, report, lambda p: read_split(p, fmt, report)[0], "examples"
            )
            check_generation_data(train, val, report, d.min_examples)
        elif train is not None:
            report.add("error", "empty_file", "no usable training examples", train.source)
        report.stats["format"] = fmt
        if report.errors:
            raise DataError(report.problems)
        assert train is not None and val is not None
        return train, val, report, "+".join(f[:16] for f in (fp_train, fp_val) if f)

    def load_tokenizer(self, source: ModelSource) -> Any:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source.path, trust_remote_code=self.cfg.trust_remote_code)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        if self.format == "chat" and not getattr(tok, "chat_template", None):
            raise ConfigError(
                f"model: {source.spec}'s tokenizer has no chat template, so chat data cannot be formatted; "
                "use a chat model or prompt/completion data (data.format)"
            )
        return tok

    def check_lengths(self, tokenizer: Any, train: Examples, val: Examples, report: DataReport) -> int:
        """Render every example once; choose max_length; apply the truncation policy; count tokens."""
        limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
        limit = limit if 0 < limit < 1_000_000 else MAX_LENGTH_CAP
        rendered = {}
        for split, ex in (("train", train), ("validation", val)):
            rendered[split] = [render(tokenizer, r) for r in ex.inputs]
        lengths = [len(ids) for ids, _ in rendered["train"]]
        max_length = settle_max_length(self.cfg.train.max_length, lengths, limit, report, MAX_LENGTH_CAP)
        self.items_by_split = {}
        stats = {}
        for split, ex in (("train", train), ("validation", val)):
            items, split_stats = self._fit_to_length(rendered[split], ex, max_length, report)
            self.items_by_split[split] = items
            stats[split] = split_stats
        report.stats["tokens"] = stats
        if self.cfg.train.epochs is not None:  # else once the data-driven default is chosen (finetune)
            self.bill_tokens(report, self.cfg)
        if len(self.items_by_split["train"]) < self.cfg.data.min_examples or not self.items_by_split["validation"]:
            report.add(
                "error",
                "too_few_examples",
                f"after the truncation policy, {len(self.items_by_split['train'])} training and "
                f"{len(self.items_by_split['validation'])} validation examples are left "
                f"(at least {self.cfg.data.min_examples} and 1 needed)",
                train.source,
            )
            raise DataError(report.problems)
        return max_length

    def _fit_to_length(
        self, rendered: list[tuple[list[int], list[bool]]], ex: Examples, max_length: int, report: DataReport
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        policy = self.cfg.data.truncation
        items, too_long, lost = [], [], []
        for (ids, mask), line, record in zip(rendered, ex.lines, ex.inputs):
            if len(ids) > max_length:
                too_long.append(line)
                if "text" in record:  # a document: split it into pieces of max_length tokens
                    for s in range(0, len(ids), max_length):
                        if len(ids[s : s + max_length]) > 1:
                            items.append(_item(ids[s : s + max_length], mask[s : s + max_length], line, record))
                    continue
                if policy == "drop":
                    lost.append(line)
                    continue
                ids, mask = ids[:max_length], mask[:max_length]
                if not any(mask[1:]):
                    lost.append(line)
                    continue
            items.append(_item(ids, mask, line, record))
        if too_long:
            kind = "document" if self.format == "text" else "example"
            if self.format == "text":
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
    @staticmethod
    def bill_tokens(report: DataReport, cfg: Config) -> None:
        """Training tokens x epochs, as hosted fine-tuning APIs bill them, once the epochs are known."""
        tokens = report.stats.get("tokens", {})
        if "train" in tokens:
            tokens["billable_training_tokens"] = tokens["train"]["tokens"] * cfg.train.epochs

    def build_model(self, source: ModelSource) -> Any:
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

    @staticmethod
    def lora_modules_to_save(model: Any) -> None:
        return None

    @staticmethod
    def loss(model: Any, batch: dict[str, Any]) -> Any:
        return token_loss(model, batch)

    # --- the finetune() hooks -----------------------------------------------------------------------
    def prepare(self, tokenizer: Any, train: Examples, val: Examples, max_length: int) -> Prepared:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        capacity = max(max_length, PACK_MIN)
        collate = make_collate(pad_id, capacity, self.cfg.train.packing)
        train_items, val_items = self.items_by_split["train"], self.items_by_split["validation"]
        golden = _golden(val, self.cfg.eval.generate_examples, self.cfg.train.seed)
        extra = {"tokenizer": tokenizer, "val": val, "golden": golden, "max_length": max_length}
        # Packing fills rows best from mixed lengths; grouping by length only helps when each example is a row.
        lengths = None if self.cfg.train.packing else [len(it["input_ids"]) for it in train_items]
        return Prepared(train_items, val_items, lengths, collate, pad_id, extra)

    def _eval_collate(self, prep: Prepared) -> Any:
        return make_collate(prep.pad_id, max(prep.extra["max_length"], PACK_MIN), True)

    def evaluator(self, prep: Prepared) -> Any:
        collate = self._eval_collate(prep)

        def evaluate(m: Any) -> dict[str, float]:
            with meter.measure("forward", "validation", len(prep.val_items), _tokens(prep.val_items)):
                loss, _ = validation_loss(m, prep.val_items, collate, self.cfg.eval.batch_size)
            return {"loss": loss, "perplexity": float(np.exp(min(loss, 50.0)))}

        return evaluate

    def _generate(self, model: Any, prep: Prepared) -> list[str]:
        from tunesmith.generation import generate_texts

        golden = prep.extra["golden"]
        if not golden:
            return []
        tok = prep.extra["tokenizer"]
        refs = [len(tok(r, add_special_tokens=False)["input_ids"]) for _, r, _ in golden]
        budget = min(self.cfg.eval.max_new_tokens, max(16, 2 * max(refs)))
        prompts = [prompt_ids(tok, p) for p, _, _ in golden]
        with meter.measure("generate", "validation", len(prompts)):
            return generate_texts(model, tok, prompts, max_new_tokens=budget, batch_size=16)

    def before_training(self, model: Any, prep: Prepared, source: ModelSource, main: bool) -> Any:
        """The base model's validation loss and its answers to the golden prompts, before any weight changes."""
        if not main:
            return None
        with meter.measure("forward", "validation", len(prep.val_items), _tokens(prep.val_items)):
            loss, tokens = validation_loss(model, prep.val_items, self._eval_collate(prep), self.cfg.eval.batch_size)
        return {"loss": loss, "tokens": tokens, "outputs": self._generate(model, prep)}

    @staticmethod
    def method_features(baseline: Any) -> None:
        return None

    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Prepared, baseline: Any, report: DataReport, fit: Any
    ) -> dict[str, Any]:
        from tunesmith.eval.report_generation import build_generation_report

        with meter.measure("forward", "validation", len(prep.val_items), _tokens(prep.val_items)):
            loss, tokens = validation_loss(model, prep.val_items, self._eval_collate(prep), cfg.eval.batch_size)
        tuned = {"loss": loss, "tokens": tokens, "outputs": self._generate(model, prep)}
        return build_generation_report(
            run, cfg=cfg, base=baseline, tuned=tuned, golden=prep.extra["golden"], report=report, fit=fit
        )

    def parity_check(self, prep: Prepared) -> Any:
        """Golden prompts: the held-out prompts, or for plain text the opening of held-out documents."""
        prompts = [p for p, _, _ in prep.extra["golden"][:16]]
        if not prompts:
            prompts = [r["text"][:200] for r in prep.extra["val"].inputs[:16] if "text" in r]
        return greedy_parity(prep.extra["tokenizer"], prompts)

    def manifest_extras(self, prep: Prepared) -> dict[str, Any]:
        tok = prep.extra["tokenizer"]
        from tunesmith.generation import stop_token_ids

        return {
            "data": {"format": self.format},
            "generation": {
                "format": self.format,
                "chat_template": bool(getattr(tok, "chat_template", None)),
                "stop_token_ids": stop_token_ids(tok),
                "packing": self.cfg.train.packing,
            },
        }

    @staticmethod
    def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
        m = manifest["metrics"]
        out = [f"\n{'model':<10}{'val loss':>10}{'perplexity':>12}{'token F1':>10}{'ROUGE-L':>9}"]
        for name in ("base", "tuned"):
            r = m[name]
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


def _item(ids: list[int], mask: list[bool], line: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"input_ids": np.asarray(ids, dtype=np.int32), "loss_mask": np.asarray(mask, dtype=bool), "line": line}


def _golden(val: Examples, n: int, seed: int) -> list[tuple[Any, str, int]]:
    """Up to n held-out (prompt, reference, line) triples, a seeded sample kept in file order."""
    pairs = [(p[0], p[1], ln) for r, ln in zip(val.inputs, val.lines) if (p := prompt_of(r)) is not None]
    if len(pairs) <= n:
        return pairs
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=n, replace=False))]


def greedy_parity(tokenizer: Any, prompts: list[Any], max_new_tokens: int = 32) -> Any:
    """Generation models: the merged model must give exactly the greedy outputs of base + adapter."""
    from tunesmith.generation import generate_ids
    from tunesmith.methods import ParityCheck

    ids = [prompt_ids(tokenizer, p) for p in prompts]

    def run(model: Any) -> list[list[int]]:
        return generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, batch_size=16)

    def compare(before: list[list[int]], after: list[list[int]]) -> tuple[bool, dict[str, Any]]:
        same = sum(a == b for a, b in zip(before, after))
        return same == len(before), {"prompts": len(before), "identical_greedy_outputs": same}

    return ParityCheck(run, compare, "greedy outputs")
