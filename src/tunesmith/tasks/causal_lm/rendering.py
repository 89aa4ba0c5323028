"""Rendering a record (chat, prompt/completion, plain text) into token ids and a per-token loss mask, and the
prompts the model answers at evaluation and in use."""

from __future__ import annotations

import json
from typing import Any

from tunesmith.errors import ConfigError


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        for_template(tokenizer, messages), tokenize=False, add_generation_prompt=generation_prompt
    )


def for_template(tokenizer: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the chat template takes them. Tool calls go to a template that renders ``tool_calls`` in
    OpenAI's structure; a template that does not gets them written into the assistant's text, one
    ``<tool_call>{"name", "arguments"}</tool_call>`` block each (the convention of Hermes and Qwen models), and tool
    results stay messages of role ``tool``."""
    native = "tool_calls" in (getattr(tokenizer, "chat_template", None) or "")
    out = []
    for m in messages:
        message = {"role": m["role"], "content": m["content"]}
        calls = m.get("tool_calls") or []
        if calls and native:
            message["tool_calls"] = [{"type": "function", "function": c} for c in calls]
        elif calls:
            message["content"] = answer_text(m)
        out.append(message)
    return out


def answer_text(message: dict[str, Any]) -> str:
    """An assistant message as text: its content, then its tool calls as ``<tool_call>`` blocks."""
    calls = message.get("tool_calls") or []
    blocks = "\n".join(f"<tool_call>\n{json.dumps(c, ensure_ascii=False)}\n</tool_call>" for c in calls)
    return "\n".join(part for part in (message["content"], blocks) if part)


def chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, carries_loss) pieces. Each assistant turn is what the template adds
    between the prompt for that turn (``add_generation_prompt=True``) and the conversation including it: the
    answer and its end-of-turn marker. Whitespace after the marker belongs to the prompt side. An assistant turn
    with ``"weight": 0`` is context: it carries no loss."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    trained = [m["role"] == "assistant" and m.get("weight", 1) != 0 for m in messages]
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
        pieces.append((answer[: len(answer) - len(trailing)], trained[i]))
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
        msgs = [{k: v for k, v in m.items() if k != "weight"} for m in record["messages"]]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant" and record["messages"][i].get("weight", 1))
        return msgs[:last], answer_text(msgs[last])
    if "prompt" in record:
        return record["prompt"], record["completion"]
    return None


def prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """Token ids that make the model answer ``prompt`` (messages get the chat template's generation prompt)."""
    if isinstance(prompt, list):
        text = _apply_template(tokenizer, prompt, True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]
