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


def model_info(model: Any, name: str) -> dict[str, Any]:
    m = model.manifest
    metrics = {k: v for k, v in m.get("metrics", {}).items() if isinstance(v, int | float)}
    return {
        "name": name,
        "task": m.get("task"),
        "method": m.get("method"),
        "base_model": m.get("base_model", {}).get("spec"),
        "labels": getattr(model, "labels", None),
        "metrics": metrics,
        "backend": getattr(model, "backend", "torch"),
        "max_length": m.get("max_length"),
    }


def create_app(model: Any, name: str, settings: ServeSettings) -> Any:
    task = model.manifest.get("task")
    generator = model.generates
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunesmith-model")
    info = model_info(model, name)

    def predict_batch(inputs: list[Any]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(p) for p in model.predict(inputs)]

    batcher = MicroBatcher(predict_batch, executor, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue)
    gen_state = {"waiting": 0}
    gen_lock = asyncio.Lock()

    async def auth(request: Request) -> None:
        if not token_matches(request.headers.get("authorization"), settings.token):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        await batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="tunesmith model server",
        version="1",
        description=f"Serving {name} ({task}).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.batcher = batcher

    def unprocessable(msg: str) -> HTTPException:
        return HTTPException(422, msg)

    def decode_inputs(inputs: list[str]) -> list[Any]:
        if len(inputs) > settings.max_inputs:
            raise unprocessable(f"{len(inputs)} inputs; at most {settings.max_inputs} per request")
        if model.input_kind != "image":
            for i, text in enumerate(inputs):
                if not text.strip():
                    raise unprocessable(f"inputs[{i}] is empty")
                if len(text) > settings.max_input_chars:
                    raise unprocessable(f"inputs[{i}] has {len(text)} characters; at most {settings.max_input_chars}")
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

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model", dependencies=[Depends(auth)])
    async def describe() -> dict[str, Any]:
        return info

    @app.get("/openapi.json", dependencies=[Depends(auth)], include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.post("/v1/predict", dependencies=[Depends(auth)])
    async def predict(req: PredictRequest) -> dict[str, Any]:
        if generator:
            raise HTTPException(400, "this model generates text: use POST /v1/generate")
        items = decode_inputs(req.inputs)
        t = time.perf_counter()
        try:
            results = await asyncio.wait_for(batcher.submit(items), settings.timeout_s)
        except QueueFull as exc:
            raise HTTPException(429, f"busy: {exc}", headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise HTTPException(504, f"no answer within {settings.timeout_s:g} s") from None
        return {"model": name, "predictions": results, "ms": round((time.perf_counter() - t) * 1000, 2)}

    @app.post("/v1/generate", dependencies=[Depends(auth)], response_model=None)
    async def generate(req: GenerateRequest) -> Any:
        if not generator:
            raise HTTPException(400, "this model classifies: use POST /v1/predict")
        if req.max_new_tokens > settings.max_new_tokens:
            raise unprocessable(f"max_new_tokens is {req.max_new_tokens}; at most {settings.max_new_tokens}")
        prompt = req.prompt if isinstance(req.prompt, str) else [m.model_dump() for m in req.prompt]
        if isinstance(prompt, str) and len(prompt) > settings.max_input_chars:
            raise unprocessable(f"prompt has {len(prompt)} characters; at most {settings.max_input_chars}")
        if gen_state["waiting"] >= settings.max_waiting_generations:
            raise HTTPException(429, "busy: too many generations waiting", headers={"Retry-After": "1"})
        kwargs = {
            "max_new_tokens": req.max_new_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "system": req.system,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout_s
        gen_state["waiting"] += 1
        try:
            await asyncio.wait_for(gen_lock.acquire(), settings.timeout_s)
        except asyncio.TimeoutError:
            gen_state["waiting"] -= 1
            raise HTTPException(504, f"no answer within {settings.timeout_s:g} s") from None
        if not req.stream:
            try:
                text = await asyncio.wait_for(
                    loop.run_in_executor(executor, lambda: model.generate(prompt, **kwargs)),
                    max(0.0, deadline - loop.time()),
                )
            except asyncio.TimeoutError:
                raise HTTPException(504, f"no answer within {settings.timeout_s:g} s") from None
            finally:
                gen_lock.release()
                gen_state["waiting"] -= 1
            return {"model": name, "text": text}

        async def events() -> Any:
            pieces = model.stream(prompt, **kwargs)
            done = object()
            try:
                while True:
                    piece = await loop.run_in_executor(executor, next, pieces, done)
                    if piece is done:
                        break
                    if loop.time() > deadline:
                        yield "event: error\ndata: " + json.dumps({"detail": "timed out"}) + "\n\n"
                        return
                    yield "data: " + json.dumps({"text": piece}) + "\n\n"
                yield "data: [DONE]\n\n"
            finally:
                pieces.close()
                gen_lock.release()
                gen_state["waiting"] -= 1

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
