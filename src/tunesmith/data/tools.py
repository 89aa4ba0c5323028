"""Function calling, written the same way at training and in use: the tools a conversation offers go into its
system message (a short instruction and one JSON line per function between ``<tools>`` tags), and the model calls
one by answering with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (the convention of Hermes
and Qwen models; causal_lm/rendering.answer_text writes the training answers). A chat template's own tool syntax is
not used, so that a model is served exactly as it was trained, whichever template it has."""

from __future__ import annotations

import json
import re
from typing import Any

INSTRUCTION = (
    "You can call the functions below. To call one, answer with a <tool_call> block holding a JSON object with "
    'its "name" and "arguments", e.g. <tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
)
CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def check_tools(tools: Any) -> str | None:
    """None when ``tools`` is a list of OpenAI function definitions ({type: function, function: {name,
    description?, parameters?}}); else what is wrong."""
    if not isinstance(tools, list) or not tools:
        return "tools must be a non-empty list of {type: function, function: {name, description, parameters}}"
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            return f"tools[{i}] must be {{type: function, function: {{name, description, parameters}}}}"
        if not isinstance(fn.get("name"), str) or not fn["name"].strip():
            return f"tools[{i}].function.name must be a non-empty string"
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            return f"tools[{i}].function.parameters must be a JSON schema object"
        if "description" in fn and not isinstance(fn["description"], str):
            return f"tools[{i}].function.description must be text"
    return None


def tools_text(tools: list[dict[str, Any]]) -> str:
    lines = [json.dumps(t["function"], ensure_ascii=False, sort_keys=True) for t in tools]
    return INSTRUCTION + "\n<tools>\n" + "\n".join(lines) + "\n</tools>"


def with_tools(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The messages with the tools in the system message (after its own text, or as a new first message)."""
    if not tools:
        return messages
    text = tools_text(tools)
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + text}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def parse_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(the text outside the tool-call blocks, the calls as {"name", "arguments"}). A block that is not a JSON
    object with a name and object arguments is not a call and stays in the text."""
    calls: list[dict[str, Any]] = []
    kept: list[str] = []
    last = 0
    for match in CALL.finditer(text):
        try:
            obj = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        args = obj.get("arguments", {}) if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(args, dict):
            continue
        calls.append({"name": obj["name"], "arguments": args})
        kept.append(text[last : match.start()])
        last = match.end()
    kept.append(text[last:])
    return "".join(kept).strip(), calls
