"""The OpenAI-compatible routes, called by the official ``openai`` Python package against a live server: chat
completions (plain and streamed), stop sequences, usage counts, models, and errors in OpenAI's shape."""

from __future__ import annotations

import httpx
import openai
import pytest

import tunesmith
from tests.conftest import llm_config
from tests.hardening.server_kit import AUTH, TOKEN, live

QUESTION = [{"role": "user", "content": "What does a cat say?"}]


@pytest.fixture(scope="module")
def served(tiny_llama, chat_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("openai")
    run = tunesmith.finetune(llm_config(tiny_llama, *chat_data, out / "runs", train__epochs=1,
                                        cache_dir=str(out / "cache")))  # fmt: skip
    model = tunesmith.load(run.path)
    with live(model, max_new_tokens=64) as (url, _):
        yield model, openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0), url


def test_chat_completion_matches_the_model_and_counts_tokens(served):
    model, client, _ = served
    want = model.complete(QUESTION, max_new_tokens=12)
    r = client.chat.completions.create(model="m@v1", messages=QUESTION, temperature=0, max_tokens=12)
    assert r.object == "chat.completion" and r.model == "m@v1" and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.message.content == want["text"]
    assert choice.finish_reason == want["finish_reason"]
    assert r.usage.prompt_tokens == model.count_tokens(QUESTION) == want["prompt_tokens"]
    assert r.usage.completion_tokens == want["completion_tokens"] > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "What does a "}, {"type": "text", "text": "cat say?"}]}
    ]
    again = client.chat.completions.create(model="m@v1", messages=parts, temperature=0, max_tokens=12)
    assert again.choices[0].message.content == want["text"]


def test_streamed_chunks_add_up_to_the_same_answer(served):
    model, client, _ = served
    want = model.complete(QUESTION, max_new_tokens=12)
    stream = client.chat.completions.create(model="m@v1", messages=QUESTION, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == want["text"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [want["finish_reason"]]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == want["prompt_tokens"]


def test_stop_sequences_cut_the_answer_plain_and_streamed(served):
    model, client, _ = served

    # a seeded sample long enough to hold a stop sequence (the tiny model's greedy answer is one character)
    def sample(seed: int) -> str:
        return model.complete(QUESTION, max_new_tokens=24, temperature=1.0, seed=seed)["text"]

    seed = next(s for s in range(50) if len(sample(s)) > 6)
    full = sample(seed)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = full[: full.find(stop)]
    same = {"model": "m@v1", "messages": QUESTION, "temperature": 1.0, "seed": seed, "max_tokens": 24}
    r = client.chat.completions.create(**same, stop=[stop])
    assert r.choices[0].message.content == cut.strip() and r.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(**same, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == cut.strip()
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_are_listed(served):
    _, client, _ = served
    assert [m.id for m in client.models.list()] == ["m@v1"]
    assert client.models.retrieve("m@v1").owned_by == "tunesmith"


def test_errors_come_in_openai_shape(served):
    _, client, url = served
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="x" * 20, max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert exc.value.body["code"] == "model_not_found"
    for bad in ({"n": 2}, {"max_tokens": 100_000}, {"stop": ["a", "b", "c", "d", "e"]}, {"logprobs": True}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m@v1", messages=QUESTION, **bad)
    for body in (b'{"model": "m@v1", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
                 b'{"model": "m@v1", "messages": []}', b'{"model": "m@v1", "messages": [{"role": "user", '
                 b'"content": "\\ud800"}]}', b"{nope"):  # fmt: skip
        r = httpx.post(f"{url}/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"},
                       content=body)  # fmt: skip
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
