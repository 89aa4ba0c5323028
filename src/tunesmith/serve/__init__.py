"""Serving a model over HTTP: FastAPI on uvicorn, bearer-token auth, limits, micro-batched prediction."""

from tunesmith.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
