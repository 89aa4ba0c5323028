"""The dashboard's routes. Pages are rendered on the server (pages.py, forms.py); a little script (static/ui.js)
follows live runs and jobs, drives the chat and the labelling keys. Every route but /login, /health and /static
needs a session; every POST needs the session's CSRF token; paths are confined to the workspace's folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith import api
from tunesmith.errors import DataError, TunesmithError
from tunesmith.ui import forms, pages
from tunesmith.ui.auth import COOKIE, SESSION_SECONDS, Session, Sessions
from tunesmith.ui.html import alert, e, page, table, url

STATIC = Path(__file__).parent / "static"
OPEN = ("/login", "/health", "/static/")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'")  # fmt: skip
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class Refused(Exception):
    """A request the dashboard answers with ``status`` and a message (no session, bad CSRF token)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(ws: Any, token: str, max_upload_bytes: int = 64 << 20, secure_cookie: bool = False) -> Any:
    """The dashboard over workspace ``ws``, behind the body limit (uploads over ``max_upload_bytes`` are 413)."""
    app = FastAPI(title="tunesmith dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    sessions = Sessions(token)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def session_of(request: Request) -> Session:
        found = sessions.get(request.cookies.get(COOKIE))
        if found is None:
            raise Refused(401, "log in first")
        return found

    async def posted(request: Request) -> tuple[Session, dict[str, Any]]:
        """The session and the form of a state-changing request whose CSRF token matches."""
        session = session_of(request)
        form: dict[str, Any] = {}
        kind = request.headers.get("content-type", "")
        if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = dict((await request.form()).multi_items())
        elif kind.startswith("application/json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise Refused(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise Refused(400, "the body must be a JSON object")
            form = body
        given = request.headers.get("x-csrf-token") or form.get("csrf")
        if not isinstance(given, str) or not sessions.csrf_ok(session, given):
            raise Refused(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        return session, form

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if not path.startswith(OPEN) and sessions.get(request.cookies.get(COOKIE)) is None:
            if request.method == "GET" and not path.startswith("/api/"):
                target = path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(url("/login", next=target), status_code=303)
            return JSONResponse({"detail": "log in first"}, status_code=401)
        response = await call_next(request)
        if "content-security-policy" not in response.headers:
            response.headers["content-security-policy"] = CSP
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "no-referrer"
        response.headers["x-frame-options"] = "SAMEORIGIN"
        if "cache-control" not in response.headers:
            response.headers["cache-control"] = "no-store"
        return response

    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=status)
        csrf = (sessions.get(request.cookies.get(COOKIE)) or Session(csrf="")).csrf
        body = alert(e(message)) + "<p>Go back to change it, or see <a href='/'>the runs</a>.</p>"
        return HTMLResponse(page("Not done", body, csrf=csrf), status_code=status)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _error(request, exc.status, str(exc))

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(TunesmithError)
    async def known_error(request: Request, exc: TunesmithError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status)

    def see(target: str) -> RedirectResponse:
        return RedirectResponse(target, status_code=303)

    # --- login ----------------------------------------------------------------------------------------------------
    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login")
    def login_form(next: str = "/") -> HTMLResponse:
        return html(pages.login_page(next_url=_local(next)))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        given, target = str(form.get("token") or ""), _local(str(form.get("next") or "/"))
        sid = sessions.login(given)
        if sid is None:
            return html(pages.login_page("That is not the token this dashboard printed.", target), 401)
        response = see(target)
        response.set_cookie(COOKIE, sid, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=secure_cookie, path="/")  # fmt: skip
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await posted(request)
        sessions.logout(request.cookies.get(COOKIE))
        response = see("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    # --- runs -----------------------------------------------------------------------------------------------------
    @app.get("/")
    def runs(request: Request, q: str = "", task: str = "", status: str = "", sort: str = "newest") -> HTMLResponse:
        return html(pages.runs_page(ws, session_of(request).csrf, q, task, status, sort))

    @app.get("/run")
    def run(request: Request, path: str, message: str = "") -> HTMLResponse:
        return html(pages.run_page(ws, session_of(request).csrf, path, message))

    @app.get("/run/file")
    def run_file(path: str, name: str) -> Response:
        text, kind = ws.run_file(path, name)
        if kind == "text/html":  # a report: shown sandboxed (no script, no requests but its own inline data)
            return HTMLResponse(text, headers={"content-security-policy": REPORT_CSP})
        return PlainTextResponse(text, media_type=f"{kind}; charset=utf-8")

    @app.get("/api/progress")
    def progress(path: str) -> dict[str, Any]:
        return ws.progress(path)

    @app.post("/run/resume")
    async def resume(request: Request) -> Response:
        _, form = await posted(request)
        job = ws.resume(str(form.get("path", "")))
        return see(url("/run", path=str(form["path"]), message=f"Resuming: job {job.id}"))

    @app.post("/run/export")
    async def export(request: Request) -> Response:
        _, form = await posted(request)
        job = ws.export(str(form.get("path", "")), str(form.get("kind", "")))
        return see(f"/jobs/{job.id}")

    @app.post("/run/register")
    async def register(request: Request) -> Response:
        _, form = await posted(request)
        job = ws.register(str(form.get("path", "")), str(form.get("name", "")), str(form.get("alias") or "") or None)
        return see(f"/jobs/{job.id}")

    @app.get("/compare")
    def compare(request: Request) -> HTMLResponse:
        return html(pages.compare_page(ws, session_of(request).csrf, request.query_params.getlist("path")))

    # --- jobs -----------------------------------------------------------------------------------------------------
    @app.get("/jobs")
    def jobs(request: Request) -> HTMLResponse:
        return html(pages.jobs_page(ws, session_of(request).csrf))

    @app.get("/jobs/{job_id}")
    def job(request: Request, job_id: str) -> HTMLResponse:
        return html(pages.job_page(ws, session_of(request).csrf, job_id))

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str) -> dict[str, Any]:
        j = ws.jobs.get(job_id)
        run_ready = bool(j.run) and (Path(j.run) / "config.yaml").is_file()
        return {**j.to_dict(), "log": ws.jobs.log(job_id), "run_url": url("/run", path=ws.folders.shown(Path(j.run)))
                if run_ready else None}  # fmt: skip

    @app.post("/jobs/{job_id}/stop")
    async def stop(request: Request, job_id: str) -> Response:
        await posted(request)
        ws.jobs.stop(job_id)
        return see(f"/jobs/{job_id}")

    # --- new run --------------------------------------------------------------------------------------------------
    @app.get("/new")
    def new(request: Request, train: str = "", validation: str = "", task: str = "") -> HTMLResponse:
        values = {"train": train, "validation": validation, "task": task}
        return html(forms.new_run_page(ws, session_of(request).csrf, values))

    def _form_values(form: dict[str, Any]) -> dict[str, str]:
        return {k: str(form.get(k) or "") for k in forms.FIELDS}

    @app.post("/new/check")
    async def new_check(request: Request) -> HTMLResponse:
        session, form = await posted(request)
        values = _form_values(form)
        try:
            raw, _ = forms.build_config(values)
            _confine_config(raw)
            result = forms.check_result(await run_in_threadpool(api.validate, raw))
        except DataError as exc:
            result = forms.check_result(problem=exc)
        except TunesmithError as exc:
            result = forms.check_result(problem=exc)
        return html(forms.new_run_page(ws, session.csrf, values, result))

    def _confine_config(raw: dict[str, Any]) -> None:
        """The data files (and a model given as a folder) must be inside the workspace's folders."""
        for key in ("train", "validation"):
            if raw["data"].get(key):
                raw["data"][key] = str(ws.folders.confine(raw["data"][key], f"data.{key}"))
        model = raw.get("model")
        if model and ("/" in model or model.startswith(".")):
            raw["model"] = str(ws.folders.confine(model, "model"))

    def _written_config(form: dict[str, Any]) -> Path:
        if form.get("config"):
            return ws.config_path(str(form["config"]))
        raw, name = forms.build_config(_form_values(form))
        _confine_config(raw)
        api.validate(raw)  # nothing trains, and no config is written, on a fatal data problem
        return ws.write_config(raw, name)

    async def launch(request: Request, start: Any) -> Response:
        """Write the form's config (after the data checks) and start ``start(config)``: a plan or a training."""
        session, form = await posted(request)
        try:
            config = await run_in_threadpool(_written_config, form)
        except DataError as exc:
            return html(forms.new_run_page(ws, session.csrf, _form_values(form), forms.check_result(problem=exc)), 400)
        return see(f"/jobs/{start(str(config)).id}")

    @app.post("/new/plan")
    async def new_plan(request: Request) -> Response:
        return await launch(request, ws.plan)

    @app.post("/new/start")
    async def new_start(request: Request) -> Response:
        return await launch(request, ws.train)

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        _, form = await posted(request)
        item = form.get("file")
        if item is None or not hasattr(item, "read"):
            raise Refused(400, "upload: choose a file")
        saved = ws.upload(str(item.filename or ""), await item.read())
        field = "validation" if form.get("field") == "validation" else "train"
        return see(url("/new", **{field: ws.folders.shown(saved)}))

    @app.get("/config")
    def config_reference(request: Request) -> HTMLResponse:
        rows = [[f"<code>{e(k)}</code>", f"<code>{e(d)}</code>", e(h)] for k, d, h in api.config_reference()]
        return html(page("Every config key", table(["key", "default", "meaning"], rows), csrf=session_of(request).csrf))

    # --- models ---------------------------------------------------------------------------------------------------
    @app.get("/models")
    def models(request: Request, message: str = "") -> HTMLResponse:
        return html(forms.models_page(ws, session_of(request).csrf, message))

    @app.post("/models/gate")
    async def gate(request: Request) -> HTMLResponse:
        session, form = await posted(request)
        ref, alias = str(form.get("ref") or ""), str(form.get("alias") or "")  # the store checks both
        found = await run_in_threadpool(api.gate, ref, alias)  # may measure an evaluation set: off the loop
        return html(forms.models_page(ws, session.csrf, gate_html=forms.gate_section(found, session.csrf)))

    @app.post("/models/promote")
    async def promote(request: Request) -> Response:
        _, form = await posted(request)
        ref, alias = str(form.get("ref") or ""), str(form.get("alias") or "")  # the store checks both
        moved = await run_in_threadpool(api.promote, ref, alias, None, form.get("force") == "1")
        said = f"{moved['name']}@{moved['alias']} now points at v{moved['version']}"
        if moved["gate"]["forced"]:
            said += " (forced past the gate: " + "; ".join(moved["gate"]["reasons"]) + ")"
        return see(url("/models", message=said))

    @app.post("/models/update")
    async def update(request: Request) -> Response:
        _, form = await posted(request)
        job = ws.update(str(form.get("ref") or ""), str(form.get("data") or ""), str(form.get("alias") or "") or None)
        return see(f"/jobs/{job.id}")

    # --- try it ---------------------------------------------------------------------------------------------------
    @app.get("/try")
    def try_it(request: Request, model: str = "") -> HTMLResponse:
        return html(forms.try_page(ws, session_of(request).csrf, model))

    @app.post("/try/classify")
    async def classify(request: Request) -> HTMLResponse:
        session, form = await posted(request)
        model = str(form.get("model") or "")
        path = await run_in_threadpool(ws.model_path, model)
        image = form.get("image")
        row = None
        if form.get("row"):
            try:
                row = json.loads(str(form["row"]))
            except ValueError as exc:
                raise Refused(400, f"row: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise Refused(400, "row: give a JSON object of column -> value")
        data = await image.read() if image is not None and hasattr(image, "read") else None
        text = str(form.get("text") or "")
        pred = await run_in_threadpool(ws.playground.classify, path, text or None, data, row)
        shown = text or (json.dumps(row) if row else "")
        return html(forms.try_page(ws, session.csrf, model, forms.prediction_html(pred, data), text=shown))

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        _, body = await posted(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise Refused(400, "messages: a list of {role: user|assistant, content: text}")
        tokens = body.get("max_new_tokens", 96)
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise Refused(400, "max_new_tokens: a whole number")
        path = await run_in_threadpool(ws.model_path, str(body.get("model") or ""))
        said = [{"role": m["role"], "content": m["content"]} for m in messages]
        return await run_in_threadpool(ws.playground.chat, path, said, tokens)

    # --- label ----------------------------------------------------------------------------------------------------
    @app.get("/label")
    def label(request: Request, queue: str = "", i: int | None = None, source: str = "") -> HTMLResponse:
        csrf = session_of(request).csrf
        if queue:
            return html(forms.label_page(ws, csrf, queue, i))
        return html(forms.label_index(ws, csrf, source))

    @app.get("/label/image")
    def label_image(queue: str = "", i: int = -1) -> Response:
        """One picked image of an image queue, as PNG (read from the queue's pool, inside the workspace)."""
        png = ws.queue(queue).picture_png(i)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/label/start")
    async def label_start(request: Request) -> Response:
        _, form = await posted(request)
        try:
            k = int(str(form.get("k") or "20"))
        except ValueError:
            raise Refused(400, "k: a whole number of rows") from None
        name = str(form.get("name") or "")  # the workspace checks queue names
        job = ws.label_next(str(form.get("source") or ""), str(form.get("pool") or ""), k, name)
        return see(f"/jobs/{job.id}")

    @app.post("/label/set")
    async def label_set(request: Request) -> Response:
        _, form = await posted(request)
        name = str(form.get("queue") or "")
        try:
            index = int(str(form.get("index")))
        except ValueError:
            raise Refused(400, "index: a row number") from None
        ws.queue(name).set_label(index, str(form.get("label") or ""))
        return see(url("/label", queue=name))

    @app.post("/label/retrain")
    async def label_retrain(request: Request) -> Response:
        _, form = await posted(request)
        job = ws.retrain(str(form.get("queue") or ""))
        return see(f"/jobs/{job.id}")

    return api.body_guard(app, max_upload_bytes)


def _local(target: str) -> str:
    """A redirect target on this site only (no scheme, no host, no //)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
