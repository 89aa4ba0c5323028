"""Function calling through the OpenAI-compatible API, with the official ``openai`` client: a tiny model trained
on conversations that offer a tool and call it answers a new question with a tool call, plain and streamed; the
tool's result goes back in; what cannot be honoured is refused."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

import tunesmith
from tests.conftest import ANIMALS, CHATML, llm_config, write_jsonl
from tests.hardening.server_kit import TOKEN, live
from tunesmith.data.tools import tools_text, with_tools

TOOLS = [{"type": "function", "function": {"name": "sound_of", "description": "the sound an animal makes",
          "parameters": {"type": "object", "properties": {"animal": {"type": "string"}}}}}]  # fmt: skip
ASK = [{"role": "user", "content": "What does a cat say?"}]


def _rows(n: int) -> list[dict]:
    """OpenAI fine-tuning rows: the tool offered, the question, the call, the tool's result, the answer."""
    out = []
    for i in range(n):
        a = list(ANIMALS)[i % len(ANIMALS)]
        call = {"id": f"c{i}", "type": "function",
                "function": {"name": "sound_of", "arguments": json.dumps({"animal": a})}}  # fmt: skip
        out.append({"tools": TOOLS, "messages": [
            {"role": "user", "content": f"What does a {a} say?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": ANIMALS[a]},
            {"role": "assistant", "content": f"A {a} says {ANIMALS[a]}."},
        ]})  # fmt: skip
    return out


def _tool_llama(folder: Path) -> Path:
    """A 2-layer Llama (64 wide, 512 positions) whose byte-level BPE knows the tool instruction's words."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [tools_text(TOOLS)] * 5 + [json.dumps({"name": "sound_of", "arguments": {"animal": a}}) for a in ANIMALS]
    corpus += [f"What does a {a} say? A {a} says {s}." for a, s in ANIMALS.items()]
    corpus += ["user", "assistant", "system", "tool", "<tool_call>", "</tool_call>"]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=alphabet)
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|im_start|>")  # fmt: skip
    tok.chat_template, tok.model_max_length = CHATML, 512
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("tools")
    train, val = write_jsonl(out / "train.jsonl", _rows(60)), write_jsonl(out / "val.jsonl", _rows(12))
    cfg = llm_config(_tool_llama(out / "model"), train, val, out / "runs", method="full", train__epochs=60,
                     train__learning_rate=5e-3, eval__generate_examples=0, cache_dir=str(out / "cache"))  # fmt: skip
    model = tunesmith.load(tunesmith.finetune(cfg).path)
    with live(model, max_new_tokens=64) as (url, _):
        yield model, openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)


def test_a_question_is_answered_with_a_tool_call(served):
    model, client = served
    want = model.complete(with_tools(ASK, TOOLS), max_new_tokens=40)
    r = client.chat.completions.create(model="m@v1", messages=ASK, tools=TOOLS, temperature=0, max_tokens=40)
    (choice,) = r.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "sound_of" and call.id.startswith("call_")
    assert set(json.loads(call.function.arguments)) == {"animal"}
    assert f'"name": "{call.function.name}"' in want["text"]  # the same answer the model gives directly
    assert r.usage.prompt_tokens == model.count_tokens(with_tools(ASK, TOOLS)) > model.count_tokens(ASK)


def test_streamed_calls_arrive_whole_with_their_index(served):
    _, client = served
    chunks = list(client.chat.completions.create(model="m@v1", messages=ASK, tools=TOOLS, temperature=0,
                                                 max_tokens=40, stream=True))  # fmt: skip
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "sound_of"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_the_tools_result_goes_back_in_and_none_offers_no_tools(served):
    model, client = served
    first = client.chat.completions.create(model="m@v1", messages=ASK, tools=TOOLS, temperature=0, max_tokens=40)
    call = first.choices[0].message.tool_calls[0]
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
               {"role": "tool", "tool_call_id": call.id, "content": "meow"}]  # fmt: skip
    second = client.chat.completions.create(model="m@v1", messages=history, tools=TOOLS, temperature=0,
                                            max_tokens=24)  # fmt: skip
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")
    plain = client.chat.completions.create(model="m@v1", messages=ASK, tools=TOOLS, tool_choice="none",
                                           temperature=0, max_tokens=8)  # fmt: skip
    assert plain.usage.prompt_tokens == model.count_tokens(ASK) and plain.choices[0].message.tool_calls is None


def test_what_cannot_be_honoured_is_refused(served):
    _, client = served
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.chat.completions.create(model="m@v1", messages=ASK, tools=TOOLS, tool_choice="required")
    bad = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "sound_of", "arguments": "[1, 2"}}]},
        {"role": "tool", "tool_call_id": "x", "content": "meow"}]  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="arguments is not a JSON object"):
        client.chat.completions.create(model="m@v1", messages=bad, tools=TOOLS)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m@v1", messages=ASK, tools=[{"type": "function", "function": {}}])
