"""OpenAI-compatible routes, so that OpenAI's clients (the ``openai`` package, LangChain, curl recipes) talk to a
tuned causal LM unchanged: the bearer token is the client's API key.

  GET  /v1/models                 the one model served, as OpenAI lists models
  GET  /v1/models/{id}            that model
  POST /v1/chat/completions       messages -> a chat.completion (or chat.completion.chunk events if stream)
  POST /v1/embeddings             texts -> unit vectors (an embedding run: a tuned sentence encoder)

They share /v1/generate's limits, its one-at-a-time generation and its stop-when-the-client-leaves; errors come in
OpenAI's shape ({"error": {"message", "type", "param", "code"}}), bad requests as 400 as OpenAI answers them.
Parameters OpenAI has and a local model cannot honour (n > 1, logprobs, penalties, a forced tool call) are refused by
name. Tools are offered the way training wrote them (data/tools.py) and calls are read back from the answer's
``<tool_call>`` blocks into OpenAI's ``tool_calls``."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunesmith.data.tools import parse_tool_calls

MAX_STOPS = 4


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: str = Field(description="the arguments as a JSON object, in text")


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool's result answers this call


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat completion request, as far as a local model can honour it (defaults as OpenAI's: sampling at
    temperature 1; temperature 0 is greedy)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="one answer per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    user: str | None = None
    tools: list[Tool] | None = Field(None, min_length=1, max_length=64)
    tool_choice: Literal["auto", "none"] | dict[str, Any] | Literal["required"] | None = None
    parallel_tool_calls: bool | None = None

    def offered_tools(self) -> list[dict[str, Any]] | None:
        """The tools the model is told of: none with tool_choice "none"; "required" or a named function is refused
        (a local model's decoding is not constrained to a call, so the promise could not be kept)."""
        if self.tool_choice not in (None, "auto", "none"):
            raise HTTPException(400, "tool_choice: auto or none; a named or required call cannot be guaranteed")
        if not self.tools or self.tool_choice == "none":
            return None
        return [t.model_dump(exclude_none=True) for t in self.tools]


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request: one text or a list; vectors as floats, at the model's own width."""

    model_config = ConfigDict(extra="forbid")
    model: str
    input: str | list[str] = Field(description="a text or a list of texts")
    encoding_format: Literal["float"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


def json_event(body: dict[str, Any]) -> str:
    return "data: " + json.dumps(body, ensure_ascii=True) + "\n\n"


def stops_of(req: ChatRequest) -> list[str]:
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOPS or any(not s for s in stops):
        raise HTTPException(400, f"stop: at most {MAX_STOPS} non-empty strings")
    return stops


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text up to the first stop sequence, and whether one was found."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def add_openai_routes(app: FastAPI, service: Any, name: str, auth: list[Any]) -> None:
    """The routes, on the app ``create_app`` built (its token, body limits and error shapes)."""
    created = int(time.time())
    card = {"id": name, "object": "model", "created": created, "owned_by": "tunesmith"}

    @app.get("/v1/models", dependencies=auth)
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id:path}", dependencies=auth)
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != name:
            raise HTTPException(404, f"the model {model_id!r} does not exist; this server serves {name!r}")
        return card

    @app.post("/v1/embeddings", dependencies=auth)
    async def embeddings(req: EmbeddingsRequest) -> dict[str, Any]:
        if req.model != name:
            raise HTTPException(404, f"the model {req.model!r} does not exist; this server serves {name!r}")
        if not getattr(service.model, "embeds", False):
            raise HTTPException(400, "this model does not embed text: serve an embedding run")
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts:
            raise HTTPException(400, "input: at least one text")
        width = int(service.model.model.config.hidden_size)
        if req.dimensions is not None and req.dimensions != width:
            raise HTTPException(400, f"dimensions: this model's embeddings have {width}; it cannot give others")
        out = await service.predict_inputs(texts)
        tokens = sum(len(ids) for ids in service.model.ids(texts))
        data = [{"object": "embedding", "index": i, "embedding": p["embedding"]}
                for i, p in enumerate(out["predictions"])]  # fmt: skip
        return {"object": "list", "data": data, "model": name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip

    @app.post("/v1/chat/completions", dependencies=auth, response_model=None)
    async def chat_completions(req: ChatRequest) -> Any:
        if req.model != name:
            raise HTTPException(404, f"the model {req.model!r} does not exist; this server serves {name!r}")
        prompt, kwargs = service.chat_args(req)
        stops = stops_of(req)
        ident, made = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        tools = req.offered_tools() is not None
        if req.stream and tools:  # calls are known only once the answer is whole: generated, then sent as chunks
            out = await service.run_generation(lambda stop: service.model.complete(prompt, stop=stop, **kwargs))
            message, finish, completion = _answer(service, out, stops, tools)
            usage = req.stream_options is not None and req.stream_options.include_usage
            events = _whole_as_chunks(message, finish, ident, made, name, out["prompt_tokens"], completion, usage)
            return StreamingResponse(iter(events), media_type="text/event-stream")
        if req.stream:
            pieces = await service.open_stream(prompt, kwargs)
            usage = req.stream_options is not None and req.stream_options.include_usage
            chunks = _chunks(service, pieces, prompt, kwargs, stops, ident, made, name, usage)
            return StreamingResponse(chunks, media_type="text/event-stream")
        out = await service.run_generation(lambda stop: service.model.complete(prompt, stop=stop, **kwargs))
        message, finish, completion = _answer(service, out, stops, tools)
        return {
            "id": ident,
            "object": "chat.completion",
            "created": made,
            "model": name,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(out["prompt_tokens"], completion),
            **({"sources": out["sources"]} if "sources" in out else {}),  # a model with a knowledge base
        }


def _answer(service: Any, out: dict[str, Any], stops: list[str], tools: bool) -> tuple[dict[str, Any], str, int]:
    """(the assistant message, the finish reason, completion tokens) of a whole answer: cut at a stop sequence,
    and with tools offered, its <tool_call> blocks as OpenAI's tool_calls."""
    text, stopped = cut_at_stop(out["text"], stops)
    completion = service.model.count_answer_tokens(text) if stopped else out["completion_tokens"]
    finish = "stop" if stopped else out["finish_reason"]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tools:
        rest, calls = parse_tool_calls(text)
        if calls:
            message["content"] = rest or None
            message["tool_calls"] = [
                {"id": f"call_{secrets.token_hex(12)}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                for c in calls
            ]  # fmt: skip
            finish = "tool_calls"
    return message, finish, completion


def _whole_as_chunks(message: dict[str, Any], finish: str, ident: str, made: int, name: str, prompt_tokens: int,
                     completion: int, usage: bool) -> list[str]:  # fmt: skip
    """A whole answer as OpenAI's stream: the role, the content, each tool call (with its index), the finish
    reason, the usage if asked, then [DONE]."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return json_event({"id": ident, "object": "chat.completion.chunk", "created": made, "model": name,
                           "choices": [choice]})  # fmt: skip

    events = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        events.append(chunk({"content": message["content"]}))
    for i, call in enumerate(message.get("tool_calls") or []):
        events.append(chunk({"tool_calls": [{"index": i, **call}]}))
    events.append(chunk({}, finish))
    if usage:
        events.append(json_event({"id": ident, "object": "chat.completion.chunk", "created": made, "model": name,
                                  "choices": [], "usage": _usage(prompt_tokens, completion)}))  # fmt: skip
    events.append("data: [DONE]\n\n")
    return events


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _chunks(service: Any, pieces: Any, prompt: Any, kwargs: dict[str, Any], stops: list[str], ident: str,
                  made: int, name: str, usage: bool) -> Any:  # fmt: skip
    """OpenAI's streaming chunks: the role, the text as it comes (held back only as long as it could still be the
    start of a stop sequence), the finish reason, the usage if asked, then [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return json_event({"id": ident, "object": "chat.completion.chunk", "created": made, "model": name,
                           "choices": [choice]})  # fmt: skip

    yield chunk({"role": "assistant", "content": ""})
    hold = max((len(s) for s in stops), default=1) - 1
    held, said, stopped = "", "", False
    try:
        async for piece in pieces:
            held += piece
            text, stopped = cut_at_stop(held, stops)
            if stopped:
                held = text
                break
            ready = held[: len(held) - hold] if hold else held
            if ready:
                said += ready
                held = held[len(ready) :]
                yield chunk({"content": ready})
    except asyncio.TimeoutError:
        yield json_event({"error": {"message": "timed out", "type": "timeout", "param": None, "code": "timeout"}})
        return
    except Exception as exc:
        yield json_event({"error": {"message": type(exc).__name__, "type": "server_error", "param": None,
                                    "code": None}})  # fmt: skip
        return
    if held:
        said += held
        yield chunk({"content": held})
    tokens = service.model.count_answer_tokens(said.strip())
    finish = "stop" if stopped or tokens < kwargs["max_new_tokens"] else "length"
    yield chunk({}, finish)
    if usage:
        body = {"id": ident, "object": "chat.completion.chunk", "created": made, "model": name, "choices": [],
                "usage": _usage(service.model.count_tokens(prompt, kwargs.get("system")), tokens)}  # fmt: skip
        yield json_event(body)
    yield "data: [DONE]\n\n"
