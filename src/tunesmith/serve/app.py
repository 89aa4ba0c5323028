"""The HTTP API. Every route but /health needs the bearer token; limits answer 413 / 422 / 429 / 503 / 504 and a
malformed request never reaches the model.

  GET  /health          liveness, no token
  GET  /v1/model        name, version, task, labels, metrics, backend
  POST /v1/predict      {"inputs": [...]} -> labels and probabilities (classifiers; images as base64)
  POST /v1/generate     {"prompt": ..., "stream": false} -> the answer (causal-lm; server-sent events if stream)
  GET  /openapi.json    the OpenAPI spec
"""

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tunesmith.inference.base import Predictor
from tunesmith.serve.batcher import MicroBatcher, QueueFull
from tunesmith.serve.security import BodyLimit, token_matches


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


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(
        min_length=1, description="texts, or for image models base64-encoded image files (PNG, JPEG, ...)"
    )


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str | list[Message]
    system: str | None = None
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
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
        """Texts checked for size, or base64 images decoded; 422 on the first bad one."""
        s = self.settings
        if len(inputs) > s.max_inputs:
            raise unprocessable(f"{len(inputs)} inputs; at most {s.max_inputs} per request")
        if self.model.input_kind != "image":
            for i, text in enumerate(inputs):
                if not text.strip():
                    raise unprocessable(f"inputs[{i}] is empty")
                if len(text) > s.max_input_chars:
                    raise unprocessable(f"inputs[{i}] has {len(text)} characters; at most {s.max_input_chars}")
            return inputs
        from PIL import Image, UnidentifiedImageError

        images = []
        for i, data in enumerate(inputs):
            try:
                raw = base64.b64decode(data, validate=True)
                with Image.open(io.BytesIO(raw)) as img:
                    images.append(np.asarray(img.convert("RGB")))
            except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
                raise unprocessable(f"inputs[{i}] is not a base64-encoded image ({type(exc).__name__})") from None
        return images

    async def predict(self, req: PredictRequest) -> dict[str, Any]:
        if self.model.generates:
            raise HTTPException(400, "this model generates text: use POST /v1/generate")
        items = self.decode_inputs(req.inputs)
        t = time.perf_counter()
        try:
            results = await asyncio.wait_for(self.batcher.submit(items), self.settings.timeout_s)
        except QueueFull as exc:
            raise busy(str(exc)) from None
        except asyncio.TimeoutError:
            raise timed_out(self.settings) from None
        return {"model": self.name, "predictions": results, "ms": round((time.perf_counter() - t) * 1000, 2)}

    def _generation_args(self, req: GenerateRequest) -> tuple[Any, dict[str, Any]]:
        s = self.settings
        if not self.model.generates:
            raise HTTPException(400, "this model classifies: use POST /v1/predict")
        if req.max_new_tokens > s.max_new_tokens:
            raise unprocessable(f"max_new_tokens is {req.max_new_tokens}; at most {s.max_new_tokens}")
        prompt = req.prompt if isinstance(req.prompt, str) else [m.model_dump() for m in req.prompt]
        if isinstance(prompt, str) and len(prompt) > s.max_input_chars:
            raise unprocessable(f"prompt has {len(prompt)} characters; at most {s.max_input_chars}")
        if self.waiting >= s.max_waiting_generations:
            raise busy("too many generations waiting")
        kwargs = {"max_new_tokens": req.max_new_tokens, "temperature": req.temperature, "top_p": req.top_p,
                  "seed": req.seed, "system": req.system}  # fmt: skip
        return prompt, kwargs

    async def _acquire(self) -> None:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.lock.acquire(), self.settings.timeout_s)
        except asyncio.TimeoutError:
            self.waiting -= 1
            raise timed_out(self.settings) from None

    def _release(self) -> None:
        self.lock.release()
        self.waiting -= 1

    async def generate(self, req: GenerateRequest) -> Any:
        prompt, kwargs = self._generation_args(req)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s
        await self._acquire()
        if req.stream:
            return StreamingResponse(self._events(prompt, kwargs, deadline), media_type="text/event-stream")
        try:
            text = await asyncio.wait_for(
                loop.run_in_executor(self.executor, lambda: self.model.generate(prompt, **kwargs)),
                max(0.0, deadline - loop.time()),
            )
        except asyncio.TimeoutError:
            raise timed_out(self.settings) from None
        finally:
            self._release()
        return {"model": self.name, "text": text}

    async def _events(self, prompt: Any, kwargs: dict[str, Any], deadline: float) -> Any:
        """Server-sent events: the answer piece by piece, then [DONE]; the model is released at the end."""
        loop = asyncio.get_running_loop()
        pieces = self.model.stream(prompt, **kwargs)
        done = object()
        try:
            while True:
                piece = await loop.run_in_executor(self.executor, next, pieces, done)
                if piece is done:
                    break
                if loop.time() > deadline:
                    yield "event: error\ndata: " + json.dumps({"detail": "timed out"}) + "\n\n"
                    return
                yield "data: " + json.dumps({"text": piece}) + "\n\n"
            yield "data: [DONE]\n\n"
        finally:
            pieces.close()
            self._release()


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

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
