"""The pages that read: the runs list, one run (live while it trains), the comparison, the jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunesmith import api
from tunesmith.ui.html import (
    alert,
    badge,
    button_form,
    duration,
    e,
    figure,
    headline,
    is_share,
    number,
    page,
    size,
    table,
    url,
    when,
)  # fmt: skip

SORTS = {"newest": lambda r: -r.started, "oldest": lambda r: r.started, "task": lambda r: (r.task, -r.started),
         "status": lambda r: (r.status, -r.started), "time": lambda r: -(r.seconds or 0),
         "size": lambda r: -r.size_bytes,
         "metric": lambda r: -((r.headline or {}).get("difference") or float("-inf"))}  # fmt: skip
STATUSES = ("finished", "running", "failed", "interrupted")


def login_page(error: str = "", next_url: str = "/") -> str:
    msg = alert(e(error)) if error else ""
    body = (
        f"{msg}<form method=post action='/login' class=card>"
        "<p>Paste the token <code>tunesmith ui</code> printed when it started (or the one in "
        "<code>$TUNESMITH_TOKEN</code> / <code>--token-file</code>).</p>"
        "<label for=token>Token</label>"
        "<input id=token name=token type=password autocomplete=current-password required autofocus>"
        f"<input type=hidden name=next value='{e(next_url)}'>"
        "<p><button type=submit>Log in</button></p></form>"
    )
    return page("Log in", body, scripts=False)


def runs_page(ws: Any, csrf: str, q: str = "", task: str = "", status: str = "", sort: str = "newest") -> str:
    runs = ws.runs()
    tasks = sorted({r.task for r in runs})
    shown = [
        r for r in runs
        if (not q or q.lower() in (r.shown + " " + r.model + " " + r.method).lower())
        and (not task or r.task == task) and (not status or r.status == status)
    ]  # fmt: skip
    shown.sort(key=SORTS.get(sort, SORTS["newest"]))

    def options(values: Any, chosen: str, all_text: str) -> str:
        opts = [f"<option value=''>{all_text}</option>"]
        opts += [f"<option{' selected' if v == chosen else ''}>{e(v)}</option>" for v in values]
        return "".join(opts)

    sorts = "".join(f"<option{' selected' if s == sort else ''}>{s}</option>" for s in SORTS)
    filters = (
        "<form method=get action='/' class='filters' role=search>"
        f"<label>Search <input type=search name=q value='{e(q)}' placeholder='folder, model, method'></label>"
        f"<label>Task <select name=task>{options(tasks, task, 'all tasks')}</select></label>"
        f"<label>Status <select name=status>{options(STATUSES, status, 'any status')}</select></label>"
        f"<label>Sort by <select name=sort>{sorts}</select></label>"
        "<button type=submit>Apply</button></form>"
    )
    if not runs:
        body = filters + (
            "<p>No runs yet under " + e(", ".join(str(r) for r in ws.folders.roots)) + ". "
            "<a href='/new'>Start a new run</a>, or run <code>tunesmith train CONFIG</code> in this folder.</p>"
        )
        return page("Runs", body, active="/", csrf=csrf)
    rows = []
    for r in shown:
        tick = f"<input type=checkbox name=path value='{e(r.shown)}' aria-label='compare {e(r.shown)}'>"
        rows.append([
            tick,
            f"<a href='{e(url('/run', path=r.shown))}'>{e(r.path.name)}</a><br><small>{e(r.shown)}</small>",
            e(r.task), e(_short(r.model)), e(r.method), badge(r.status), headline(r.headline),
            e(when(r.started)), e(duration(r.seconds)), e(size(r.size_bytes)),
        ])  # fmt: skip
    listing = table(["<span class=sr>compare</span>", "run", "task", "base model", "method", "status",
                     "against the general model (95% CI)", "started", "time", "size"], rows,
                    numeric={8, 9})  # fmt: skip
    body = (
        filters + f"<p class=muted>{len(shown)} of {len(runs)} runs.</p>"
        f"<form method=get action='/compare'>{listing}"
        "<p><button type=submit>Compare the ticked runs</button></p></form>"
    )
    return page("Runs", body, active="/", csrf=csrf)


def _short(model: str) -> str:
    return model if len(model) <= 40 else "…" + model[-38:]


def run_page(ws: Any, csrf: str, given: str, message: str = "") -> str:
    r = ws.run(given)
    path = r.shown
    job = ws.jobs.for_run(r.path)
    facts = [
        ("task", e(r.task)), ("base model", e(r.model)), ("method", e(r.method)), ("status", badge(r.status)),
        ("started", e(when(r.started))), ("time", f"<span id=run-time>{e(duration(r.seconds))}</span>"),
        ("size", e(size(r.size_bytes))),
        ("folder", f"<code>{e(r.path)}</code>"),
    ]  # fmt: skip
    if job:
        facts.append(("job", f"<a href='/jobs/{e(job.id)}'>{e(job.title)}</a> ({e(job.status)})"))
    panel = "<table class=panel id=facts>" + "".join(f"<tr><th scope=row>{k}</th><td>{v}</td></tr>" for k, v in facts)
    panel += "</table>"
    parts = [alert(e(message), "info") if message else "", panel]
    if r.status in ("running", "interrupted", "failed") or not (r.path / "report.html").is_file():
        parts.append(_live(ws, path, r))
    if r.status in ("failed", "interrupted") and r.error:
        parts.append(alert(f"<b>{e(r.status.capitalize())}:</b> {e(r.error)}"))
    parts.append(_actions(ws, csrf, r, job))
    if r.status == "finished":
        parts.append(f"<h2>Against the general model</h2><p>{headline(r.headline)}</p>")
        parts.append(
            "<h2>Report</h2><p><a href='" + e(url("/run/file", path=path, name="report.html")) + "' target=_blank>"
            "Open the report on its own page</a></p>"
            f"<iframe class=report title='report of {e(r.path.name)}' sandbox "
            f"src='{e(url('/run/file', path=path, name='report.html'))}'></iframe>"
        )
    parts.append(_documents(ws, path))
    return page(r.path.name, "".join(parts), active="/", csrf=csrf)


def _live(ws: Any, path: str, r: Any) -> str:
    p = ws.progress(path)
    total = p["total"] or 0
    bar = (
        f"<progress id=bar max='{total}' value='{p['step']}' aria-label='training progress'></progress>"
        if total
        else "<progress id=bar aria-label='training progress'></progress>"
    )
    figures = (
        f"<dl class=figures><div><dt>step</dt><dd id=f-step>{p['step']} / {total or '?'}</dd></div>"
        f"<div><dt>epoch</dt><dd id=f-epoch>{number(p['epoch'], 3) if p['epoch'] is not None else '–'}</dd></div>"
        f"<div><dt>loss</dt><dd id=f-loss>{number(p['loss']) if p['loss'] is not None else '–'}</dd></div>"
        f"<div><dt>samples/s</dt><dd id=f-speed>{number(p['samples_per_s'], 3) if p['samples_per_s'] else '–'}</dd>"
        f"</div><div><dt>time left</dt><dd id=f-eta>{duration(p['eta_s'])}</dd></div></dl>"
    )
    charts = "".join(p["charts"]) or "<p class=muted>The charts appear with the first training steps.</p>"
    live = r.status == "running"
    return (
        f"<section id=live data-path='{e(path)}' data-live='{'1' if live else '0'}' aria-live=polite>"
        f"<h2>Training</h2>{bar}{figures}<div id=charts class=row>{charts}</div></section>"
    )


def _actions(ws: Any, csrf: str, r: Any, job: Any) -> str:
    path = r.shown
    out = []
    if job and job.status == "running" and r.status == "running":  # (a finished run's process may still be exiting)
        out.append(button_form(f"/jobs/{job.id}/stop", "Stop (saves a checkpoint)", csrf, cls="danger"))
    if r.resumable and r.status in ("interrupted", "failed"):
        out.append(button_form("/run/resume", "Resume from the last checkpoint", csrf, {"path": path}))
    if r.status == "finished":
        manifest = json.loads((r.path / "manifest.json").read_text(encoding="utf-8"))
        export = manifest.get("export") or {}
        if export.get("adapter"):
            out.append(button_form("/run/export", "Merge the adapter", csrf, {"path": path, "kind": "merge"}))
        if r.task in ("text-classification", "image-classification", "tabular-classification"):
            out.append(button_form("/run/export", "Export ONNX", csrf, {"path": path, "kind": "onnx"}))
        if r.task == "causal-lm":
            out.append(button_form("/run/export", "Export GGUF", csrf, {"path": path, "kind": "gguf"}))
        out.append(f"<a class=button href='{e(url('/try', model=path))}'>Try it</a>")
        if ws.can_label(r):
            out.append(f"<a class=button href='{e(url('/label', source=path))}'>Label next</a>")
        default = r.path.name.split("-", 2)[-1].rsplit("-", 1)[0] if r.path.name.count("-") >= 3 else "my-model"
        out.append(
            f"<form method=post action='/run/register' class='inline register'><input type=hidden name=csrf "
            f"value='{e(csrf)}'><input type=hidden name=path value='{e(path)}'>"
            f"<label>Register as <input name=name required value='{e(default)}' pattern='[a-z0-9][a-z0-9._-]*'"
            " size=18></label> <label>alias <input name=alias placeholder='optional, e.g. staging' size=14></label> "
            "<button type=submit>Register</button></form>"
        )
    return f"<div class=actions>{''.join(out)}</div>" if out else ""


def _documents(ws: Any, path: str) -> str:
    out = []
    for name, title in (("data_report.json", "Data report"), ("config.yaml", "Config"),
                        ("manifest.json", "Manifest")):  # fmt: skip
        try:
            text, _ = ws.run_file(path, name)
        except Exception:  # noqa: BLE001 - a run that has not written it yet
            continue
        if name == "data_report.json":
            try:
                body = api.data_checks_html(json.loads(text))
            except (ValueError, KeyError, TypeError):
                body = f"<pre>{e(text)}</pre>"
            out.append(f"<details><summary>{title}</summary>{body}</details>")
        else:
            out.append(f"<details><summary>{title}</summary><pre>{e(text)}</pre></details>")
    return "<h2>Files</h2>" + "".join(out) if out else ""


def compare_page(ws: Any, csrf: str, paths: list[str]) -> str:
    if len(paths) < 2:
        runs = ws.runs()
        options = "".join(
            f"<li><label><input type=checkbox name=path value='{e(r.shown)}'> {e(r.path.name)} "
            f"<small>{e(r.task)}, {e(r.method)}, {e(r.status)}</small></label></li>"
            for r in runs
        )
        body = (
            "<p>Choose two or more runs.</p><form method=get action='/compare'>"
            f"<ul class=plain>{options}</ul><button type=submit>Compare</button></form>"
        )
        return page("Compare runs", body, active="/compare", csrf=csrf)
    c = ws.compare(paths)
    names = [f"<a href='{e(url('/run', path=r.shown))}'>{e(r.path.name)}</a>" for r in c["runs"]]
    head = ["", *names]
    overview = [
        ["task", *[e(r.task) for r in c["runs"]]], ["base model", *[e(_short(r.model)) for r in c["runs"]]],
        ["method", *[e(r.method) for r in c["runs"]]], ["status", *[badge(r.status) for r in c["runs"]]],
        ["against the general model", *[headline(r.headline) for r in c["runs"]]],
        ["time", *[e(duration(r.seconds)) for r in c["runs"]]],
    ]  # fmt: skip
    metrics = [[e(m.replace("_", " ")), *[figure(m, v) for v in vals]] for m, *vals in c["metrics"]]
    config, partial = (
        [[f"<code>{e(k)}</code>", *[f"<code>{e(json.dumps(v))}</code>" for v in vals]] for k, *vals in c[part]]
        for part in ("config", "config_partial")
    )
    diffs = []
    for d in c["differences"]:
        name = e(d["run"].rsplit("/", 1)[-1])
        if "difference" in d:
            points = is_share(d["metric"])
            fmt = (lambda x: f"{100 * x:+.1f} pts") if points else (lambda x: f"{x:+.3g}")
            verdict = "different" if d["significant"] else "not measurably different"
            diffs.append([name, e(d["metric"].replace("_", " ")), e(fmt(d["difference"])),
                          e(f"{fmt(d['ci_low'])} to {fmt(d['ci_high'])}"), e(f"{d['n']:,}"), e(verdict)])  # fmt: skip
        else:
            diffs.append([name, "–", "–", "–", "–", e(d["why"])])
    first = e(c["runs"][0].path.name)
    body = (
        table(head, overview, caption="The runs")
        + "<h2>Metrics on each run's held-out data</h2>"
        + table(head, metrics)
        + f"<h2>Differences from {first}</h2><p class=muted>Paired bootstrap over the held-out examples both runs "
        "scored (95% interval); runs scored on different data are not paired.</p>"
        + table(["run", "metric", "difference", "95% CI", "examples", "reading"], diffs)
        + "<h2>Config keys that differ</h2>"
        + (table(["key", *names], config) if config else "<p>The configs are the same.</p>")
        + (
            f"<details><summary>{len(partial)} keys only some of the configs have (runs of different tunesmith "
            f"versions)</summary>{table(['key', *names], partial)}</details>"
            if partial
            else ""
        )
    )
    return page("Compare runs", body, active="/compare", csrf=csrf)


def jobs_page(ws: Any, csrf: str) -> str:
    jobs = ws.jobs.list()
    rows = [[f"<a href='/jobs/{e(j.id)}'>{e(j.title)}</a>", e(j.kind), badge(j.status), e(when(j.started)),
             e(duration((j.ended or time.time()) - j.started))] for j in jobs]  # fmt: skip
    body = (
        table(["job", "kind", "status", "started", "time"], rows, numeric={4})
        if rows
        else "<p>No background work yet: trainings, plans, exports, promotions and label picks started here appear "
        "in this list.</p>"
    )
    return page("Jobs", body, active="/jobs", csrf=csrf)


def job_page(ws: Any, csrf: str, job_id: str) -> str:
    job = ws.jobs.get(job_id)
    links = []
    if job.run:
        links.append(f"<a class=button href='{e(url('/run', path=ws.folders.shown(Path(job.run))))}'>"
                     "Follow the run</a>")  # fmt: skip
    if job.kind == "label-next" and job.output:
        links.append(f"<a class=button href='{e(url('/label', queue=job.output.rsplit('/', 1)[-1][:-4]))}'>"
                     "Label the picks</a>")  # fmt: skip
    stop = button_form(f"/jobs/{job.id}/stop", "Stop", csrf, cls="danger") if job.status == "running" else ""
    command = " ".join(["tunesmith", *job.argv])
    result = plan_result(ws, job, csrf) if job.kind == "plan" and job.status != "running" else ""
    out = ws.jobs.output(job.id) if job.kind != "plan" else ""
    log, running = ws.jobs.log(job.id), job.status == "running"
    body = (
        f"<p>{badge(job.status)} started {e(when(job.started))}"
        + (f", exit code {job.returncode}" if job.returncode is not None else "")
        + f"</p><div class=actions>{stop}{''.join(links)}</div>"
        f"<p class=muted>The same as running <code>{e(command)}</code></p>{result}"
        + (f"<h2>Output</h2><pre id=job-out>{e(out)}</pre>" if out.strip() else "")
        + (
            f"<h2>Log</h2><pre id=job-log data-job='{e(job.id)}' data-live='{'1' if running else '0'}' class=log "
            f"tabindex=0>{e(log)}</pre>"
            if log.strip() or running
            else ""
        )
    )
    return page(job.title, body, active="/jobs", csrf=csrf)


def plan_result(ws: Any, job: Any, csrf: str) -> str:
    text = ws.jobs.output(job.id).strip()
    try:
        plan = json.loads(text)
    except ValueError:
        return alert("The plan did not finish: see the log below.") if job.status != "done" else ""
    rows = []
    for o in plan["options"]:
        mark = " <b>(recommended)</b>" if f"{o['model']} / {o['method']}" == plan.get("recommended") else ""
        name = f"{ws.folders.shown(Path(o['model'])) if '/' in o['model'] else o['model']} / {o['method']}"
        peak = o.get("predicted_peak_bytes") or o.get("estimated_peak_bytes")
        rows.append([e(name) + mark, e({"ok": "yes", "too_big": "no"}.get(o["status"], "?")),
                     e(duration(o.get("predicted_seconds"))), e(f"{peak / 2**30:.2f} GiB" if peak else "–"),
                     e(f"{o['predicted_cost']:.4f}" if o.get("predicted_cost") is not None else "–"),
                     e(o.get("note") or "")])  # fmt: skip
    start = ""
    if plan.get("config_path"):
        shown = ws.folders.shown(Path(plan["config_path"]))
        start = button_form("/new/start", "Train the recommended config", csrf, {"config": shown})
        start += f" <code>{e(shown)}</code>"
    reasons = "".join(f"<li>{e(r)}</li>" for r in plan.get("reasons", []))
    return (
        f"<section id=plan><h2>Plan</h2><p>On {e(_hardware(plan.get('hardware') or {}))}.</p>"
        + table(
            ["option", "fits", "time", "peak memory", f"cost @ {plan['price_per_hour']:.2f}/h", "notes"],
            rows,
            numeric={2, 3, 4},
        )  # fmt: skip
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + start
        + "</section>"
    )


def _hardware(hw: dict[str, Any]) -> str:
    gib = 2**30
    text = f"{hw.get('cores', '?')} CPU cores, {hw.get('memory_available', 0) / gib:.1f} GiB memory free"
    return text + (f", {hw['gpu']}" if hw.get("gpu") else ", no GPU")
