"""Text-generation data in the formats the big tools use: each is told apart by its keys, read into the same
conversations, and trains; OpenAI's per-message weight 0 carries no loss; one file holds one format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tunesmith
from tests.conftest import llm_config, make_chats, write_jsonl
from tunesmith import api
from tunesmith.cli import main
from tunesmith.errors import DataError

CHATS = make_chats(60, seed=5)


def _turns(chat: dict) -> tuple[str | None, str, str]:
    msgs = chat["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    return system, msgs[-2]["content"], msgs[-1]["content"]


def sharegpt(chat: dict) -> dict:
    system, q, a = _turns(chat)
    row = {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
    return {**row, "system": system} if system else row


def alpaca(chat: dict) -> dict:
    system, q, a = _turns(chat)
    row = {"instruction": q, "input": "", "output": a}
    return {**row, "system": system} if system else row


def conversational(chat: dict) -> dict:
    return {"prompt": chat["messages"][:-1], "completion": chat["messages"][-1:]}


def openai_full(chat: dict) -> dict:
    """OpenAI's fine-tuning format in full: content as text parts, an earlier assistant turn with weight 0."""
    system, q, a = _turns(chat)
    parts = [{"type": "text", "text": q[: len(q) // 2]}, {"type": "text", "text": q[len(q) // 2 :]}]
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi.", "weight": 0},
            {"role": "user", "content": parts}, {"role": "assistant", "content": a, "weight": 1}]  # fmt: skip
    return {"messages": ([{"role": "system", "content": system}] if system else []) + msgs}


def text_rows(chat: dict) -> dict:
    _, q, a = _turns(chat)
    return {"text": f"{q} {a}", "source": "faq"}


def _write(folder: Path, name: str, rows: list[dict], how: str) -> Path:
    if how == "jsonl":
        return write_jsonl(folder / f"{name}.jsonl", rows)
    if how == "json":
        path = folder / f"{name}.json"
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
        return path
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(folder / name))
    return folder / name


@pytest.mark.parametrize(
    "convert, how, source, trained_as",
    [
        (sharegpt, "jsonl", "sharegpt", "chat"),
        (alpaca, "json", "alpaca", "chat"),
        (alpaca, "jsonl", "alpaca", "chat"),
        (conversational, "jsonl", "conversational", "chat"),
        (openai_full, "jsonl", "chat", "chat"),
        (text_rows, "jsonl", "text", "text"),
        (sharegpt, "saved", "sharegpt", "chat"),
    ],
)
def test_each_format_is_recognised_and_trains(convert, how, source, trained_as, tiny_llama, tmp_path, cache_dir):
    rows = [convert(c) for c in CHATS]
    train = _write(tmp_path, "train", rows[:48], how)
    val = _write(tmp_path, "validation", rows[48:], how)
    cfg = llm_config(tiny_llama, train, val, tmp_path / "runs", train__epochs=1, eval__generate_examples=2)
    report = api.validate(cfg)
    assert report.stats["format"] == trained_as
    assert report.stats["source_format"].startswith(f"{source}, found by its keys")
    run = tunesmith.finetune(cfg)
    assert run.manifest["data"]["format"] == trained_as and run.manifest["status"] == "complete"
    assert run.metrics["loss"] == run.metrics["loss"]  # a number, not NaN


def test_alpaca_and_sharegpt_read_as_the_same_conversations(tmp_path):
    from tunesmith.data.conversations import read_split
    from tunesmith.data.validate import DataReport

    got = {}
    for convert in (sharegpt, alpaca, lambda c: c):
        path = write_jsonl(tmp_path / "x.jsonl", [convert(c) for c in CHATS[:10]])
        examples, fmt, _ = read_split(str(path), "auto", DataReport())
        got[fmt, len(got)] = examples.inputs
    assert len({json.dumps(v) for v in got.values()}) == 1


def test_a_weight_0_turn_carries_no_loss(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    from tunesmith.data.conversations import read_split
    from tunesmith.data.validate import DataReport
    from tunesmith.tasks.causal_lm.rendering import render

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    path = write_jsonl(tmp_path / "w.jsonl", [openai_full(CHATS[1])])
    (chat,) = read_split(str(path), "auto", DataReport())[0].inputs
    assert [m.get("weight", 1) for m in chat["messages"] if m["role"] == "assistant"] == [0, 1]
    ids, mask = render(tok, chat)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert "Hi." not in trained and _turns(CHATS[1])[2] in trained
    unweighted = [{k: v for k, v in m.items() if k != "weight"} for m in chat["messages"]]
    ids2, mask2 = render(tok, {"messages": unweighted})
    assert ids2 == ids  # the same text, only the loss differs
    assert sum(mask2) - sum(mask) == len(tok("Hi.<|im_end|>", add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(
    "rows, check, says",
    [
        ([sharegpt(c) for c in CHATS[:20]] + [alpaca(c) for c in CHATS[20:30]], "mixed_formats",
         "sharegpt on lines 1, 2, 3"),
        ([{"question": "q", "answer": "a"}] * 12, "unknown_format", "no known format in keys question, answer"),
        ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}] * 12,
         "no_assistant", "no assistant turn with loss"),
        ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]}] * 12,
         "bad_weight", "allowed: 0 (no loss) or 1"),
        ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": []}]}] * 12,
         "tool_message", "a tool call needs"),
        ([{"messages": [{"role": "user", "content": "q", "tool_calls": [{"type": "function", "function": {
            "name": "f", "arguments": "{}"}}]}, {"role": "assistant", "content": "a"}]}] * 12,
         "tool_message", "only an assistant message makes tool calls"),
        ([{"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}] * 12,
         "unknown_role", "from 'bot' is not allowed"),
        ([{"tools": [{"type": "function", "function": {"name": ""}}], "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 12,
         "bad_tools", "tools[0].function.name must be"),
        ([{"instruction": "", "output": "a"}] * 12, "bad_content", "instruction is empty"),
    ],
)  # fmt: skip
def test_bad_format_data_is_refused_with_its_line(rows, check, says, tiny_llama, tmp_path, cache_dir, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(llm_config(tiny_llama, train, None, tmp_path / "runs")))
    assert main(["train", str(path)]) == 2
    assert "nothing was written" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    with pytest.raises(DataError) as exc:
        api.validate(path)
    found = [p for p in exc.value.problems if p.check == check]
    assert found and says in found[0].message and found[0].line is not None, [str(p) for p in exc.value.problems]


def test_a_dataset_with_splits_names_them(tmp_path):
    import datasets

    from tunesmith.data.readers import read_table

    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "a", "label": "x"}])}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(DataError, match="name one split's folder"):
        read_table(tmp_path / "dd")
    assert read_table(tmp_path / "dd" / "train").rows == [{"text": "a", "label": "x"}]


@pytest.fixture()
def base_llama(tiny_llama, tmp_path):
    """The tiny Llama as a base model without a chat template."""
    import shutil

    folder = tmp_path / "base-llama"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    for extra in folder.glob("chat_template.*"):
        extra.unlink()
    return folder


@pytest.mark.parametrize("choice", ["plain", "chatml", "file"])
def test_a_base_model_gets_the_chat_template_the_config_names(choice, base_llama, chat_data, tmp_path, cache_dir,
                                                              capsys):  # fmt: skip
    from transformers import AutoTokenizer

    from tunesmith.tasks.causal_lm.templates import BUILT_IN

    cfg = llm_config(base_llama, *chat_data, tmp_path / "runs", train__epochs=1, eval__generate_examples=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(path)]) == 2
    assert "set chat_template" in capsys.readouterr().err
    if choice == "file":
        (tmp_path / "t.jinja").write_text(BUILT_IN["plain"].replace("### User", "Q").replace("### Assistant", "A"))
        choice = str(tmp_path / "t.jinja")
    # One epoch may not beat the base model's answers; the adapter is what this test reads, so keep it anyway.
    run = tunesmith.finetune({**cfg, "chat_template": choice, "classifier": {"keep_better": False}})
    saved = AutoTokenizer.from_pretrained(run.path / "adapter").chat_template
    assert saved == (BUILT_IN.get(choice) or (tmp_path / "t.jinja").read_text())
    model = tunesmith.load(run.path)
    assert isinstance(model.generate("What does a cat say?", max_new_tokens=4), str)


def test_a_chat_template_that_cannot_work_is_refused(base_llama, chat_data, tmp_path, cache_dir):
    from tunesmith.errors import ConfigError

    cfg = llm_config(base_llama, *chat_data, tmp_path / "runs", train__epochs=1)
    (tmp_path / "bad.jinja").write_text("{% for m in messages %}{{ m['content'] }")
    with pytest.raises(ConfigError, match="does not render"):
        api.validate({**cfg, "chat_template": str(tmp_path / "bad.jinja")})
    with pytest.raises(ConfigError, match="neither a built-in"):
        api.validate({**cfg, "chat_template": "vicuna"})
    with pytest.raises(ConfigError, match="applies to causal-lm"):
        api.validate({**cfg, "task": "text-classification", "method": "full", "chat_template": "plain"})


def weather(chat_index: int) -> dict:
    """An OpenAI function-calling conversation: the assistant calls a tool, the tool answers, the assistant
    answers from it."""
    city = ["Oslo", "Lima", "Pune", "Kyiv"][chat_index % 4]
    call = {"id": f"call_{chat_index}", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}  # fmt: skip
    return {"messages": [
        {"role": "user", "content": f"What is the weather in {city}? ({chat_index})"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{chat_index}", "content": f"reading={chat_index}C"},
        {"role": "assistant", "content": f"It is {chat_index} degrees in {city}."},
    ]}  # fmt: skip


def test_tool_calls_train_and_tool_results_carry_no_loss(tiny_llama, tmp_path, cache_dir):
    from transformers import AutoTokenizer

    from tunesmith.data.conversations import read_split
    from tunesmith.data.validate import DataReport
    from tunesmith.tasks.causal_lm.rendering import render

    rows = [weather(i) for i in range(40)]
    train = write_jsonl(tmp_path / "train.jsonl", rows[:32])
    val = write_jsonl(tmp_path / "validation.jsonl", rows[32:])
    (record,) = read_split(str(write_jsonl(tmp_path / "one.jsonl", rows[:1])), "auto", DataReport())[0].inputs
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert record["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    ids, mask = render(tok, record)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in trained
    assert "It is 0 degrees in Oslo." in trained
    assert "reading=0C" not in trained and "What is the weather" not in trained  # tool results and questions
    assert "<|im_start|>tool\nreading=0C" in tok.decode(ids)
    # a template that renders OpenAI's tool_calls itself gets them in that structure
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}{% for c in m.tool_calls or [] %}"
        "CALL {{ c.function.name }}({{ c.function.arguments | tojson }}){% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    ids, mask = render(tok, record)
    assert 'CALL get_weather({"city": "Oslo"})' in tok.decode([i for i, m in zip(ids, mask) if m])
    run = tunesmith.finetune(llm_config(tiny_llama, train, val, tmp_path / "runs", train__epochs=1,
                                        eval__generate_examples=2))  # fmt: skip
    assert run.manifest["status"] == "complete"
