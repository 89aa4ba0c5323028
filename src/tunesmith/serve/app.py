"""The HTTP API. Every route but /health needs the bearer token; limits answer 413 / 422 / 429 / 503 / 504 and a
malformed request never reaches the model.

  GET  /health          liveness, no token
  GET  /v1/model        name, version, task, labels, metrics, backend
  POST /v1/predict      {"inputs": [...]} -> labels and probabilities (classifiers; images as base64)
  POST /v1/generate     {"prompt": ..., "stream": false} -> the answer (causal-lm; server-sent events if stream)
  GET  /openapi.json    the OpenAPI spec
  POST /v1/chat/completions, GET /v1/models   OpenAI-compatible (serve/openai_api.py)
"""

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.data.images import decode_image
from tunesmith.data.tools import with_tools
from tunesmith.errors import InputError
from tunesmith.inference.base import Predictor
from tunesmith.serve.batcher import MemberFailed, MicroBatcher, QueueFull
from tunesmith.serve.openai_api import add_openai_routes
from tunesmith.serve.security import OPENAI_PATHS, Guard, error_body, token_matches


@dataclass(frozen=True)
class ServeSettings:
    token: str
    max_body_bytes: int = 1 << 20
    max_inputs: int = 64
    max_input_chars: int = 10_000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    timeout_s: float = 30.0
    max_new_tokens: int = 512
    max_waiting_generations: int = 8
    max_image_pixels: int = 16_000_000  # decoded pixels per image (the header is read first)
    max_request_pixels: int = 64_000_000  # decoded pixels of all images in one request
    body_timeout_s: float = 10.0  # the whole request body must arrive within this


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[str | dict[str, str | int | float | bool | None]] = Field(
        min_length=1,
        description="texts; for image models base64-encoded image files (PNG, JPEG, ...); for tabular models rows "
        "as objects of column -> value",
    )


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str = Field(min_length=1)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str | list[Message] = Field(min_length=1, description="a prompt, or chat messages ending with the user's")
    system: str | None = None
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=5.0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    stream: bool = False


def model_info(model: Predictor, name: str) -> dict[str, Any]:
    m = model.manifest
    metrics = {k: v for k, v in m.get("metrics", {}).items() if isinstance(v, int | float)}
    return {
        "name": name,
        "task": m.get("task"),
        "method": m.get("method"),
        "base_model": m.get("base_model", {}).get("spec"),
        "labels": model.labels,
        "metrics": metrics,
        "backend": model.backend,
        "max_length": m.get("max_length"),
    }


def unprocessable(msg: str) -> HTTPException:
    return HTTPException(422, msg)


def timed_out(settings: ServeSettings) -> HTTPException:
    return HTTPException(504, f"no answer within {settings.timeout_s:g} s")


def busy(what: str) -> HTTPException:
    return HTTPException(429, f"busy: {what}", headers={"Retry-After": "1"})


class ModelService:
    """The model side of the server: one model thread, micro-batched prediction, one generation at a time."""

    def __init__(self, model: Predictor, name: str, settings: ServeSettings):
        self.model, self.name, self.settings = model, name, settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunesmith-model")
        self.batcher = MicroBatcher(
            self._predict_batch, self.executor, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue
        )
        self.waiting = 0  # generations queued or running
        self.lock = asyncio.Lock()

    def _predict_batch(self, inputs: list[Any]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(p) for p in self.model.predict(inputs)]

    async def close(self) -> None:
        await self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def decode_inputs(self, inputs: list[str]) -> list[Any]:
        """Texts checked for size and encoding, or base64 images decoded within the pixel limits; 422 on the first
        bad one."""
        s = self.settings
        if len(inputs) > s.max_inputs:
            raise unprocessable(f"{len(inputs)} inputs; at most {s.max_inputs} per request")
        kind = self.model.input_kind
        wrong = next((i for i, x in enumerate(inputs) if isinstance(x, dict) != (kind == "row")), None)
        if wrong is not None:
            want = "an object of column -> value" if kind == "row" else "a string"
            raise unprocessable(f"inputs[{wrong}]: this model takes {want} per input")
        if kind == "row":
            for i, row in enumerate(inputs):
                for key, value in row.items():
                    check_text(key, f"inputs[{i}] column name", s.max_input_chars)
                    if isinstance(value, str) and value.strip():  # "" is a missing value
                        check_text(value, f"inputs[{i}].{key}", s.max_input_chars)
            try:
                return self.model.check_rows(inputs)
            except InputError as exc:
                raise unprocessable(str(exc)) from None
        if kind != "image":
            for i, text in enumerate(inputs):
                check_text(text, f"inputs[{i}]", s.max_input_chars)
            return inputs
        images, pixels = [], 0
        for i, data in enumerate(inputs):
            try:
                raw = base64.b64decode(data, validate=True)
                image, _ = decode_image(raw, min(s.max_image_pixels, s.max_request_pixels - pixels))
            except binascii.Error:
                raise unprocessable(f"inputs[{i}] is not base64") from None
            except ValueError as exc:
                raise unprocessable(f"inputs[{i}]: {exc}") from None
            pixels += image.shape[0] * image.shape[1]
            images.append(image)
        return images

    async def predict(self, req: PredictRequest) -> dict[str, Any]:
        return await self.predict_inputs(req.inputs)

    async def predict_inputs(self, inputs: list[Any]) -> dict[str, Any]:
        """Checked inputs through the batcher: 422 for inputs the model cannot read, 429 when the queue is full,
        504 past the deadline."""
        if self.model.generates:
            raise HTTPException(400, "this model generates text: use POST /v1/generate")
        items = self.decode_inputs(inputs)
        t = time.perf_counter()
        try:
            results = await asyncio.wait_for(self.batcher.submit(items), self.settings.timeout_s)
        except QueueFull as exc:
            raise busy(str(exc)) from None
        except MemberFailed as exc:
            raise unprocessable(f"these inputs could not be processed: {exc}") from None
        except asyncio.TimeoutError:
            raise timed_out(self.settings) from None
        return {"model": self.name, "predictions": results, "ms": round((time.perf_counter() - t) * 1000, 2)}

    def _generation_args(self, req: GenerateRequest) -> tuple[Any, dict[str, Any]]:
        prompt = req.prompt if isinstance(req.prompt, str) else [m.model_dump() for m in req.prompt]
        return prompt, self._checked(prompt, req.system, req.max_new_tokens, "max_new_tokens", req)

    def chat_args(self, req: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """(messages, generation arguments) of an OpenAI chat request, checked as /v1/generate's are."""
        if getattr(self.model, "format", "chat") != "chat":
            raise HTTPException(400, f"this model was tuned on {self.model.format} data, not chat: use /v1/generate")
        limit = req.max_completion_tokens or req.max_tokens or min(256, self.settings.max_new_tokens)
        messages = [chat_message(m, i) for i, m in enumerate(req.messages)]
        checked = self._checked(messages, None, limit, "max_tokens", req)
        return with_tools(messages, req.offered_tools()), checked

    def _checked(self, prompt: Any, system: str | None, max_new_tokens: int, field: str, req: Any) -> dict[str, Any]:
        """The checks every generation route makes, in order (a generator; the length limit; a message list only
        for a chat model; the prompt's own rules; room in the queue), then the generation arguments."""
        s = self.settings
        if not self.model.generates:
            raise HTTPException(400, "this model classifies: use POST /v1/predict")
        if max_new_tokens > s.max_new_tokens:
            raise unprocessable(f"{field} is {max_new_tokens}; at most {s.max_new_tokens}")
        if isinstance(prompt, list) and getattr(self.model, "format", "chat") != "chat":
            raise unprocessable(f"this model was tuned on {self.model.format} data: send the prompt as a string")
        check_prompt(prompt, system, s.max_input_chars)
        if self.waiting >= s.max_waiting_generations:
            raise busy("too many generations waiting")
        return {"max_new_tokens": max_new_tokens, "temperature": req.temperature, "top_p": req.top_p,
                "seed": req.seed, "system": system}  # fmt: skip

    async def _acquire(self) -> None:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.lock.acquire(), self.settings.timeout_s)
        except asyncio.TimeoutError:
            self.waiting -= 1
            raise timed_out(self.settings) from None
        except asyncio.CancelledError:  # the client went away while waiting its turn
            self.waiting -= 1
            raise

    def _release(self) -> None:
        self.lock.release()
        self.waiting -= 1

    async def generate(self, req: GenerateRequest) -> Any:
        prompt, kwargs = self._generation_args(req)
        if getattr(self.model, "knowledge", None) is not None:  # answers from retrieved chunks, with their sources
            return await self._grounded(prompt, kwargs, req.stream)
        if req.stream:
            pieces = await self.open_stream(prompt, kwargs)
            return StreamingResponse(self._events(pieces), media_type="text/event-stream")
        text = await self.run_generation(lambda stop: self.model.generate(prompt, stop=stop, **kwargs))
        return {"model": self.name, "text": text}

    async def _grounded(self, prompt: Any, kwargs: dict[str, Any], stream: bool) -> Any:
        """A model trained with a knowledge base: retrieval runs in the model thread, before the answer; the
        sources come with the answer (streamed: as the first event)."""
        if not stream:
            out = await self.run_generation(lambda stop: self.model.complete(prompt, stop=stop, **kwargs))
            return {"model": self.name, "text": out["text"], "sources": out["sources"]}
        grounded, hits = await self.run_generation(lambda stop: self.model.ground(prompt))
        pieces = await self.open_stream(grounded, {**kwargs, "retrieve": False})
        sources = [h.to_dict() for h in hits]
        return StreamingResponse(self._events(pieces, sources), media_type="text/event-stream")

    async def run_generation(self, call: Callable[[threading.Event], Any]) -> Any:
        """``call(stop)`` in the model thread, one at a time: 504 past the deadline, and the model told to stop
        there or when the client goes away. The model is free when the work ends, not before."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s
        await self._acquire()
        stop = threading.Event()
        work = loop.run_in_executor(self.executor, lambda: call(stop))
        work.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(work), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            stop.set()
            raise timed_out(self.settings) from None
        except asyncio.CancelledError:  # the client went away
            stop.set()
            raise

    async def open_stream(self, prompt: Any, kwargs: dict[str, Any]) -> "Pieces":
        """Start a streamed generation now (not when the response body is first read, which may never happen):
        it runs in the model thread and hands pieces over a queue, ending at the answer's end, when told to stop,
        or at the deadline; the model is released when it has ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s
        await self._acquire()
        stop = threading.Event()
        queue: asyncio.Queue = asyncio.Queue()
        until = time.monotonic() + self.settings.timeout_s

        def produce() -> None:
            try:
                for piece in self.model.stream(prompt, stop=stop, **kwargs):
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
                    if time.monotonic() > until:
                        stop.set()
                    if stop.is_set():
                        break
            except Exception as exc:  # handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        work = loop.run_in_executor(self.executor, produce)
        work.add_done_callback(lambda _: self._release())
        return Pieces(queue, stop, deadline)

    async def _events(self, pieces: "Pieces", sources: list[dict[str, Any]] | None = None) -> Any:
        """Server-sent events: the sources (a model with a knowledge base), the answer piece by piece, then [DONE];
        a client that goes away stops the model."""
        try:
            if sources is not None:
                yield "data: " + json.dumps({"sources": sources}) + "\n\n"
            async for piece in pieces:
                yield "data: " + json.dumps({"text": piece}) + "\n\n"
            yield "data: [DONE]\n\n"
        except asyncio.TimeoutError:
            yield "event: error\ndata: " + json.dumps({"detail": "timed out"}) + "\n\n"
        except Exception as exc:
            yield "event: error\ndata: " + json.dumps({"detail": type(exc).__name__}) + "\n\n"


@dataclass
class Pieces:
    """A streamed answer as it arrives: ``async for piece in pieces``; raises TimeoutError past the deadline, or
    the generation's own error. Leaving the loop early (or a client that goes away) stops the generation."""

    queue: asyncio.Queue
    stop: threading.Event
    deadline: float

    async def __aiter__(self) -> Any:
        loop = asyncio.get_running_loop()
        try:
            while True:
                piece = await asyncio.wait_for(self.queue.get(), max(0.0, self.deadline - loop.time()))
                if piece is _END:
                    return
                if isinstance(piece, Exception):
                    raise piece
                yield piece
        finally:
            self.stop.set()


_END = object()


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request that does not validate: each wrong field and why, without echoing the input (a NaN or a lone
    surrogate in it cannot be written as JSON: it turned a 422 into a 500). OpenAI's routes answer 400 in their
    shape, naming the first field."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in errors]  # fmt: skip
    path = request.url.path
    if path.startswith(OPENAI_PATHS):
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        param = ".".join(p for p in first["loc"][1:] if not p.isdigit()) or None
        body = error_body(path, 400, f"{'.'.join(first['loc'][1:]) or 'body'}: {first['msg']}", param)
        return Response(json.dumps(body, ensure_ascii=True), status_code=400, media_type="application/json")
    body = json.dumps({"detail": detail}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    """HTTPExceptions in the route's shape (OpenAI's routes: their error object, 422 as OpenAI's 400)."""
    status = getattr(exc, "status_code", 500)
    message = str(getattr(exc, "detail", "error"))
    path = request.url.path
    if path.startswith(OPENAI_PATHS) and status == 422:
        status = 400
    body = json.dumps(error_body(path, status, message), ensure_ascii=True)
    return Response(body, status_code=status, media_type="application/json", headers=getattr(exc, "headers", None))


def check_text(text: str, where: str, max_chars: int) -> None:
    """422 for text no model can take: empty, over the limit, or holding half of a UTF-16 pair (JSON's
    "\\ud800", which no tokenizer can encode)."""
    if not text.strip():
        raise unprocessable(f"{where} is empty")
    if len(text) > max_chars:
        raise unprocessable(f"{where} has {len(text)} characters; at most {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise unprocessable(f"{where} holds a lone surrogate (character {exc.start}); send valid Unicode") from None


def chat_message(m: Any, i: int) -> dict[str, Any]:
    """An OpenAI chat message as the model's conversations hold it: text content, an assistant's calls as
    {"name", "arguments"} (their arguments parsed; 422 when not a JSON object), a tool's result as role tool."""
    content = m.content if isinstance(m.content, str) or m.content is None else "".join(p.text for p in m.content)
    out: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": content or ""}
    if m.tool_calls:
        if m.role != "assistant":
            raise unprocessable(f"messages[{i}]: only an assistant message has tool_calls")
        calls = []
        for k, call in enumerate(m.tool_calls):
            try:
                args = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                args = None
            if not isinstance(args, dict):
                raise unprocessable(f"messages[{i}].tool_calls[{k}].function.arguments is not a JSON object")
            calls.append({"name": call.function.name, "arguments": args})
        out["tool_calls"] = calls
    elif content is None:
        raise unprocessable(f"messages[{i}].content is missing")
    return out


def check_prompt(prompt: str | list[dict[str, str]], system: str | None, max_chars: int) -> None:
    """The prompt's own rules: every text valid and non-empty, all of it within ``max_chars`` together, a system
    message only first, and the last message the user's."""
    if isinstance(prompt, str):
        texts = [("prompt", prompt)]
    else:  # an assistant turn that only calls tools has no text
        texts = [(f"prompt[{i}].content", m["content"]) for i, m in enumerate(prompt)
                 if m["content"] or not m.get("tool_calls")]  # fmt: skip
    if system is not None:
        texts.append(("system", system))
    for where, text in texts:
        check_text(text, where, max_chars)
    total = sum(len(t) for _, t in texts)
    if total > max_chars:
        raise unprocessable(f"the prompt has {total} characters in all; at most {max_chars}")
    if isinstance(prompt, list):
        roles = [m["role"] for m in prompt]
        if "system" in roles[1:]:
            raise unprocessable(f"prompt[{roles.index('system', 1)}]: a system message may only come first")
        if system is not None and roles[0] == "system":
            raise unprocessable("give the system message once: in `system` or as the first message")
        if roles[-1] not in ("user", "tool"):
            raise unprocessable(
                f"the last message is the {roles[-1]}'s; the last message must be the user's (or a tool's result)"
            )


def create_app(model: Predictor, name: str, settings: ServeSettings) -> Any:
    """The FastAPI app: routes, the token on every route but /health, the body limit."""
    service = ModelService(model, name, settings)
    info = model_info(model, name)

    async def auth(request: Request) -> None:
        if not token_matches(request.headers.get("authorization"), settings.token):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        await service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="tunesmith model server",
        version="1",
        description=f"Serving {name} ({model.manifest.get('task')}).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.batcher = service.batcher
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    token = [Depends(auth)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model", dependencies=token)
    async def describe() -> dict[str, Any]:
        return info

    @app.get("/openapi.json", dependencies=token, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.post("/v1/predict", dependencies=token)
    async def predict(req: PredictRequest) -> dict[str, Any]:
        return await service.predict(req)

    @app.post("/v1/generate", dependencies=token, response_model=None)
    async def generate(req: GenerateRequest) -> Any:
        return await service.generate(req)

    add_openai_routes(app, service, name, token)
    app.add_middleware(Guard, token=settings.token, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s,
                       open_paths=("/health",))  # fmt: skip
    return app
