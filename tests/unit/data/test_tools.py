"""Function calling as text: tools into the system message, calls read back from <tool_call> blocks."""

from __future__ import annotations

import pytest

from tunesmith.data.tools import check_tools, parse_tool_calls, tools_text, with_tools

TOOL = {"type": "function", "function": {"name": "lookup", "description": "find an order",
                                         "parameters": {"type": "object"}}}  # fmt: skip


def test_tools_join_the_system_message_or_make_one():
    user = [{"role": "user", "content": "hi"}]
    made = with_tools(user, [TOOL])
    assert made[0]["role"] == "system" and '"name": "lookup"' in made[0]["content"] and made[1:] == user
    joined = with_tools([{"role": "system", "content": "Be brief."}, *user], [TOOL])
    assert joined[0]["content"].startswith("Be brief.\n\n") and joined[0]["content"].endswith("</tools>")
    assert with_tools(user, None) is user
    assert tools_text([TOOL]).count("\n") >= 2


@pytest.mark.parametrize(
    ("tools", "problem"),
    [
        ([], "non-empty list"),
        ([{"type": "function"}], "tools[0] must be"),
        ([{"type": "function", "function": {"name": ""}}], "name must be"),
        ([{"type": "function", "function": {"name": "f", "parameters": "x"}}], "parameters must be"),
        ([{"type": "retrieval", "function": {"name": "f"}}], "tools[0] must be"),
    ],
)
def test_bad_tool_lists_are_named(tools, problem):
    assert problem in check_tools(tools)
    assert check_tools([TOOL]) is None


def test_calls_are_read_back_and_broken_blocks_stay_text():
    text = ('Let me check.\n<tool_call>\n{"name": "lookup", "arguments": {"id": 7}}\n</tool_call>\n'
            '<tool_call>{"name": "lookup", "arguments": {"id": 8}}</tool_call>')  # fmt: skip
    rest, calls = parse_tool_calls(text)
    assert rest == "Let me check." and calls == [{"name": "lookup", "arguments": {"id": 7}},
                                                  {"name": "lookup", "arguments": {"id": 8}}]  # fmt: skip
    broken = '<tool_call>{not json}</tool_call> and <tool_call>{"arguments": {}}</tool_call>'
    assert parse_tool_calls(broken) == (broken, [])
    assert parse_tool_calls("plain answer") == ("plain answer", [])
