"""The pages that change things: a new run (data checks inline, the planner, start), the registered models
(promote through the gate, update), the playground and the labelling queue."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

from tunesmith import api
from tunesmith import config as cfgmod
from tunesmith.errors import DataError
from tunesmith.ui.html import alert, badge, button_form, csrf_field, e, figure, page, pct, table, url, when

METHODS = ("auto", "full", "lora", "head", "contrastive")
FIELDS = ("name", "task", "model", "method", "train", "validation", "text_column", "label_column", "epochs", "extra")


def build_config(values: dict[str, str]) -> tuple[dict[str, Any], str]:
    """(config mapping, its name) from the new-run form; ConfigError naming the field for a bad value."""
    raw: dict[str, Any] = {"task": values.get("task") or "text-classification"}
    if values.get("model"):
        raw["model"] = values["model"].strip()
    if values.get("method") and values["method"] != "auto":
        raw["method"] = values["method"]
    data: dict[str, Any] = {"train": (values.get("train") or "").strip()}
    if not data["train"]:
        raise cfgmod.ConfigError("data.train: choose a training file (or upload one)")
    for key in ("validation", "text_column", "label_column"):
        if (values.get(key) or "").strip():
            data[key] = values[key].strip()
    raw["data"] = data
    if (values.get("epochs") or "").strip():
        cfgmod.apply_override(raw, f"train.epochs={values['epochs'].strip()}")
    for n, line in enumerate((values.get("extra") or "").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                cfgmod.apply_override(raw, line.strip())
            except cfgmod.ConfigError as exc:
                raise cfgmod.ConfigError(f"more settings, line {n}: {exc}") from None
    cfgmod.coerce(raw)
    return raw, (values.get("name") or "").strip() or f"{raw['task']}-run"


def new_run_page(ws: Any, csrf: str, values: dict[str, str], result: str = "", error: str = "") -> str:
    v = {k: values.get(k, "") for k in FIELDS}
    tasks = "".join(f"<option{' selected' if t == (v['task'] or 'text-classification') else ''}>{e(t)}</option>"
                    for t in api.task_names())  # fmt: skip
    methods = "".join(f"<option{' selected' if m == (v['method'] or 'auto') else ''}>{m}</option>" for m in METHODS)
    models = "".join(f"<option value='{e(m['name'])}'>{e(m['task'])}, {e(m['params'])}</option>"
                     for m in api.base_models() if m["installed"] == "yes")  # fmt: skip
    files = ws.data_files()
    datalist = "".join(f"<option value='{e(f)}'></option>" for f in files)
    body = (
        (alert(e(error)) if error else "")
        + "<form method=post action='/new/check' class=card id=new-run>"
        + csrf_field(csrf)
        + "<fieldset><legend>The task and the model</legend>"
        + _field("name", "Name of this config", v["name"], "e.g. support-tickets (letters, digits, . - _)")
        + f"<label for=task>Task</label><select id=task name=task>{tasks}</select>"
        + f"<label for=model>Base model</label><input id=model name=model list=models value='{e(v['model'])}' "
        "placeholder='the task default; or a catalog name, a folder under the workspace'>"
        f"<datalist id=models>{models}</datalist>"
        + f"<label for=method>Method</label><select id=method name=method>{methods}</select>"
        "<p class=hint>auto: chosen for the data (text: contrastive under 200 examples, or under 500 with 3 or "
        "more classes; else full).</p>"
        "</fieldset><fieldset><legend>The data</legend>"
        + _field(
            "train",
            "Training file",
            v["train"],
            "a path under the workspace, or upload one below",
            extra="list=datafiles required",
        )  # fmt: skip
        + _field(
            "validation",
            "Validation file",
            v["validation"],
            "optional: else a held-out share of the training file",
            extra="list=datafiles",
        )  # fmt: skip
        + f"<datalist id=datafiles>{datalist}</datalist>"
        + _field("text_column", "Text column", v["text_column"], "default text")
        + _field("label_column", "Label column", v["label_column"], "default label")
        + "</fieldset><fieldset><legend>Training</legend>"
        + _field("epochs", "Epochs", v["epochs"], "the default for the data size", extra="inputmode=numeric")
        + "<label for=extra>More settings, one <code>key=value</code> a line "
        "(<a href='/config' target=_blank>every key</a>)</label>"
        f"<textarea id=extra name=extra rows=3 placeholder='train.learning_rate=3e-5'>{e(v['extra'])}</textarea>"
        "</fieldset><div class=actions>"
        "<button type=submit>Check the data</button>"
        "<button type=submit formaction='/new/plan'>Plan: time, memory, cost</button>"
        "<button type=submit formaction='/new/start' class=primary>Start training</button></div></form>"
        + result
        + "<h2>Upload a data file</h2>"
        "<form method=post action='/upload' enctype='multipart/form-data' class=card>"
        + csrf_field(csrf)
        + "<label for=file>CSV, JSON lines or Parquet (kept in the workspace's uploads folder)</label>"
        "<input id=file name=file type=file required accept='.csv,.jsonl,.json,.parquet,.txt,.md'>"
        "<select name=field aria-label='use it as'><option value=train>use as the training file</option>"
        "<option value=validation>use as the validation file</option></select> "
        "<button type=submit>Upload</button></form>"
    )
    return page("New run", body, active="/new", csrf=csrf)


def _field(name: str, text: str, value: str, hint: str, extra: str = "") -> str:
    return (f"<label for={name}>{text}</label><input id={name} name={name} value='{e(value)}' {extra} "
            f"placeholder='{e(hint)}'>")  # fmt: skip


def check_result(report: Any = None, problem: Exception | None = None) -> str:
    """The data checks' verdict under the form: fatal problems with file, line and field, or the warnings."""
    if isinstance(problem, DataError):
        rows = [[e(p.severity), e(p.file or "–"), e(p.line if p.line is not None else "–"), e(p.field or "–"),
                 e(p.message)] for p in problem.problems]  # fmt: skip
        return (
            "<section id=check aria-live=polite><h2>Data checks: fatal problems</h2>"
            + alert("Training cannot start until these are fixed; nothing was written.")
            + table(["severity", "file", "line", "field", "problem"], rows)
            + "</section>"
        )
    if problem is not None:
        return f"<section id=check aria-live=polite>{alert(e(problem))}</section>"
    data = report.to_dict()
    n = len(data.get("warnings", []))
    verdict = "The data passed every check" + (f", with {n} warning(s):" if n else ".")
    return f"<section id=check aria-live=polite>{alert(e(verdict), 'ok')}{api.data_checks_html(data)}</section>"


# --- models ---------------------------------------------------------------------------------------------------------
def models_page(ws: Any, csrf: str, message: str = "", gate_html: str = "") -> str:
    store = api.registry()
    rows = store.list()
    if not rows:
        body = (
            (alert(e(message), "info") if message else "")
            + "<p>No registered models yet. Open a finished run and press <b>Register</b>, or run "
            "<code>tunesmith models register runs/RUN --name NAME</code>.</p>"
        )
        return page("Models", body, active="/models", csrf=csrf)
    files = ws.data_files()
    datalist = "".join(f"<option value='{e(f)}'></option>" for f in files)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(r["name"], []).append(r)
    sections = []
    for name, versions in by_name.items():
        body_rows = []
        for r in reversed(versions):
            ref = f"{name}@v{r['version']}"
            evals = store.evaluations(ref)
            figures = "; ".join(
                f"{s}: " + ", ".join(f"{k} {figure(k, v)}" for k, v in m.items() if k != "n")
                for s, m in list(evals.items())[:2]
            )
            lineage = " ← ".join(store.lineage(ref))
            promote = (
                f"<form method=post action='/models/gate' class=inline>{csrf_field(csrf)}"
                f"<input type=hidden name=ref value='{e(ref)}'><label>alias <input name=alias value=prod size=8 "
                "pattern='[a-z][a-z0-9_-]*' required></label> <button type=submit>Promote…</button></form>"
            )
            body_rows.append([
                f"<b>v{r['version']}</b>", " ".join(f"<span class='badge alias'>@{e(a)}</span>" for a in r["aliases"]),
                e(r["task"]), e(r["method"]), e(when(r["created_at"])), e(lineage), e(figures) or "–", promote,
                f"<a class=button href='{e(url('/try', model=ref))}'>Try</a>",
            ])  # fmt: skip
        update = (
            f"<form method=post action='/models/update' class=card>{csrf_field(csrf)}"
            f"<input type=hidden name=ref value='{e(name)}@v{versions[-1]['version']}'>"
            f"<label>Update {e(name)}@v{versions[-1]['version']} on new data "
            f"<input name=data list=upd-{e(name)} required "
            f"placeholder='a data file under the workspace'></label><datalist id=upd-{e(name)}>{datalist}</datalist>"
            "<label>then move alias <input name=alias placeholder='optional, e.g. prod' size=12></label> "
            "<button type=submit>Update (fine-tune with replay, gate)</button></form>"
        )
        sections.append(
            f"<section><h2>{e(name)}</h2>"
            + table(
                ["version", "aliases", "task", "method", "registered", "lineage", "evaluations", "promote", ""],
                body_rows,
            )  # fmt: skip
            + update
            + "</section>"
        )
    body = (alert(e(message), "info") if message else "") + gate_html + "".join(sections)
    return page("Models", body, active="/models", csrf=csrf)


def gate_section(gate: dict[str, Any], csrf: str) -> str:
    """The gate's table for moving an alias, and the button that moves it (forced when the gate refuses)."""
    ref = f"{gate['name']}@v{gate['version']}"
    rows = []
    for c in gate["comparisons"]:
        ci = (
            "–"
            if any(math.isnan(c[k]) for k in ("ci_low", "ci_high"))
            else f"{c['ci_low']:+.4f} to {c['ci_high']:+.4f}"
        )
        rows.append([e(c["eval_set"]), e(c["metric"]), e(f"{c['old']:.4f}"), e(f"{c['new']:.4f}"),
                     e(f"{c['difference']:+.4f}"), e(ci), e(f"{c['regression']:+.2f}"),
                     badge("finished" if c["passed"] else "failed").replace(">finished<", ">passes<")
                     .replace(">failed<", ">regresses<")])  # fmt: skip
    current = f"v{gate['current']}" if gate["current"] is not None else "nothing yet"
    head = f"Move {e(gate['name'])}@{e(gate['alias'])} from {e(current)} to v{gate['version']}"
    if not rows:
        note = "<p>No earlier version holds this alias on a measured set: nothing to gate.</p>"
    else:
        note = table(["evaluation set", "metric", "old", "new", "change", "95% CI", "regression", "gate"], rows)
    if gate["passed"]:
        verdict = alert("The gate passes.", "ok")
        move = button_form("/models/promote", f"Move @{gate['alias']} to v{gate['version']}", csrf,
                           {"ref": ref, "alias": gate["alias"]}, cls="primary")  # fmt: skip
    else:
        verdict = alert("The gate refuses: " + e("; ".join(gate["reasons"])))
        move = button_form("/models/promote", "Move it anyway (forced, recorded)", csrf,
                           {"ref": ref, "alias": gate["alias"], "force": "1"}, cls="danger")  # fmt: skip
    return f"<section class='card wide' id=gate><h2>{head}</h2>{note}{verdict}<div class=actions>{move}</div></section>"


# --- try it ---------------------------------------------------------------------------------------------------------
def try_page(ws: Any, csrf: str, model: str = "", result: str = "", error: str = "", text: str = "") -> str:
    runs = [r for r in ws.runs() if r.status == "finished"]
    versions = api.registry().list()
    refs = [f"{r['name']}@{a}" for r in versions for a in r["aliases"]]
    refs += [f"{r['name']}@v{r['version']}" for r in versions]
    options = "".join(f"<option value='{e(x)}'{' selected' if x == model else ''}>{e(x)}</option>" for x in refs)
    options += "".join(
        f"<option value='{e(r.shown)}'{' selected' if r.shown == model else ''}>{e(r.path.name)} ({e(r.task)})</option>"
        for r in runs
    )
    chooser = (
        "<form method=get action='/try' class=inline><label for=model>Model</label> "
        f"<select id=model name=model>{options}</select> <button type=submit>Choose</button></form>"
    )
    body = chooser + (alert(e(error)) if error else "")
    if model:
        manifest = api.manifest(ws.model_path(model))
        task = manifest.get("task")
        if task == "causal-lm":
            body += _chat(model, csrf)
        elif task == "embedding":
            body += "<p>An embedding model: search with it through <code>tunesmith kb search</code> or serve it.</p>"
        else:
            body += _classify(model, task, csrf, text, manifest) + result
    return page("Try it", body, active="/try", csrf=csrf)


def _classify(model: str, task: str, csrf: str, text: str, manifest: dict[str, Any]) -> str:
    if task == "image-classification":
        field = ("<label for=image>An image (PNG, JPEG, ...)</label>"
                 "<input id=image name=image type=file accept='image/*' required>")  # fmt: skip
        enc = " enctype='multipart/form-data'"
    elif task == "tabular-classification":
        field = ("<label for=row>A row, as a JSON object of column → value</label>"
                 f"<textarea id=row name=row rows=6 required>{e(text or '{}')}</textarea>")  # fmt: skip
        enc = " enctype='multipart/form-data'"
    else:
        field = (f"<label for=text>Text to classify</label><textarea id=text name=text rows=4 required "
                 f"maxlength=10000>{e(text)}</textarea>")  # fmt: skip
        enc = " enctype='multipart/form-data'"
    labels = ", ".join(str(v) for v in (manifest.get("label_map") or {}).values())
    return (
        f"<form method=post action='/try/classify' class=card{enc}>{csrf_field(csrf)}"
        f"<input type=hidden name=model value='{e(model)}'>{field}"
        f"<p class=hint>Classes: {e(labels)}</p><button type=submit class=primary>Classify</button></form>"
    )


IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def image_preview(data: bytes | None) -> str:
    """The classified picture beside its prediction (PNG, JPEG or GIF, inline: nothing is stored)."""
    kind = next((mime for magic, mime in IMAGE_TYPES if data and data.startswith(magic)), None)
    if kind is None:
        return ""
    return f"<img class=preview alt='the classified image' src='data:{kind};base64,{base64.b64encode(data).decode()}'>"


def prediction_html(pred: dict[str, Any], image: bytes | None = None) -> str:
    bars = "".join(
        f"<tr><th scope=row>{e(k)}</th><td class=num>{pct(v)}</td><td class=barcell><span class=bar "
        f"style='width:{max(0.5, 100 * v):.1f}%'></span></td></tr>"
        for k, v in pred["probabilities"].items()
    )
    return (
        f"<section id=prediction aria-live=polite><h2>Prediction: {e(pred['label'])} ({pct(pred['score'])})</h2>"
        f"{image_preview(image)}<table class=probs><caption>Every class's probability</caption>{bars}</table></section>"
    )


def _chat(model: str, csrf: str) -> str:
    return (
        f"<section id=chat data-model='{e(model)}' class=card><h2>Chat: the general model beside the tuned one</h2>"
        "<div class=columns><div><h3>General model</h3><ol id=base-log class=log aria-live=polite></ol></div>"
        "<div><h3>Tuned</h3><ol id=tuned-log class=log aria-live=polite></ol></div></div>"
        "<form id=chat-form><label for=message>Your message</label>"
        "<textarea id=message name=message rows=2 required maxlength=4000></textarea>"
        "<label>Longest answer (tokens) <input id=max-tokens type=number min=1 max=512 value=96></label> "
        "<button type=submit class=primary>Send</button> <button type=button id=chat-reset>New conversation</button>"
        "<p id=chat-status class=hint role=status></p></form></section>"
    )


# --- label ----------------------------------------------------------------------------------------------------------
def label_index(ws: Any, csrf: str, source: str = "", message: str = "") -> str:
    queues = []
    for name in ws.queues():
        try:
            st = ws.queue(name).state()
        except Exception:  # noqa: BLE001 - a queue whose files were removed by hand
            continue
        status = f"{st['done']} of {len(st['items'])} labelled" if st["ready"] else "being picked…"
        queues.append([f"<a href='{e(url('/label', queue=name))}'>{e(name)}</a>", e(st["source"].rsplit("/", 1)[-1]),
                       e(st["pool"].rsplit("/", 1)[-1]), e(status)])  # fmt: skip
    runs = ws.labelling_runs()
    run_opts = "".join(f"<option value='{e(r.shown)}'{' selected' if r.shown == source else ''}>{e(r.path.name)}"
                       "</option>" for r in runs)  # fmt: skip
    datalist = "".join(f"<option value='{e(f)}'></option>" for f in ws.pool_files())
    start = (
        f"<form method=post action='/label/start' class=card>{csrf_field(csrf)}"
        "<h2>Pick what to label next</h2><p class=hint>The run's model scores every row of the pool; the rows whose "
        "labels would help most (uncertain, and unlike each other and the training data) are queued.</p>"
        f"<label for=source>Run</label><select id=source name=source required>{run_opts}</select>"
        "<label for=pool>Unlabelled pool (under the workspace: a data file; for an image run also a folder of "
        "images, a listing of their paths or an .npz)</label>"
        f"<input id=pool name=pool list=pools required><datalist id=pools>{datalist}</datalist>"
        "<label for=k>How many</label><input id=k name=k type=number min=1 max=500 value=20>"
        "<label for=qname>Queue name</label><input id=qname name=name required value='next' "
        "pattern='[A-Za-z0-9][A-Za-z0-9._-]*'>"
        "<div class=actions><button type=submit class=primary>Pick</button></div></form>"
    )
    listing = table(["queue", "run", "pool", "progress"], queues) if queues else "<p>No labelling queues yet.</p>"
    body = (alert(e(message), "info") if message else "") + listing + (start if runs else
            "<p>Label next needs a finished text- or image-classification run to score the pool.</p>")  # fmt: skip
    return page("Label", body, active="/label", csrf=csrf)


def label_page(ws: Any, csrf: str, name: str, index: int | None = None) -> str:
    st = ws.queue(name).state()
    if not st["ready"]:
        job = st.get("job")
        body = (
            f"<p id=picking data-live=1>The rows are being picked. <a href='/jobs/{e(job)}'>Follow the job</a>; "
            "this page reloads when they are ready.</p>"
        )
        return page(f"Label: {name}", body, active="/label", csrf=csrf)
    items, images = st["items"], st["images"]
    picked = int(st.get("created") or 0)  # in the image URLs: picks made again under this name are not cached ones

    def image_url(i: int) -> str:
        return url("/label/image", queue=name, i=i, v=picked)

    todo = [it for it in items if not it["label"]]
    if index is None:
        current = todo[0] if todo else None
    else:
        current = items[index] if 0 <= index < len(items) else None
    done = st["done"]
    head = (f"<p><progress max='{len(items)}' value='{done}' aria-label='labelled'></progress> {done} of {len(items)} "
            "labelled</p>")  # fmt: skip
    if current is None:
        card = "<p class=ok>Every picked row is labelled.</p>"
    else:
        i = current["index"]
        keys = [str(k + 1) for k in range(9)] + ["0"]  # the tenth class is key 0; classes after it are clicked
        buttons = "".join(
            f"<button type=submit name=label value='{e(c)}'"
            + (f" data-key='{keys[k]}' class=choice><kbd>{keys[k]}</kbd> " if k < len(keys) else " class=choice>")
            + f"{e(c)}</button>"
            for k, c in enumerate(st["classes"])
        )
        nxt = next((it["index"] for it in items if it["index"] > i and not it["label"]), None)
        prev = i - 1 if i > 0 else None
        card = (
            f"<form method=post action='/label/set' class='card labelcard' id=label-form>{csrf_field(csrf)}"
            f"<input type=hidden name=queue value='{e(name)}'><input type=hidden name=index value='{i}'>"
            f"<p class=hint>Row {i + 1} of {len(items)} (pool {'row' if images else 'line'} {e(current['line'])}); "
            f"picked because: {e(current['reason'])}</p>"
            + (
                f"<figure class=labelimage><img id=label-image src='{e(image_url(i))}' "
                f"alt='the image to label: {e(current['text'])}'><figcaption id=label-text>{e(current['text'])}"
                "</figcaption></figure>"
                if images
                else f"<blockquote id=label-text>{e(current['text'])}</blockquote>"
            )
            + (f"<p>Labelled: <b>{e(current['label'])}</b></p>" if current["label"] else "")
            + f"<div class='actions choices'>{buttons}</div>"
            + "<p class=hint>Keys: <kbd>1</kbd>–<kbd>9</kbd>"
            + (", <kbd>0</kbd>" if len(st["classes"]) >= 10 else "")
            + " label, <kbd>s</kbd> skip, <kbd>b</kbd> back.</p>"
            + (f"<a id=skip href='{e(url('/label', queue=name, i=nxt))}'>Skip</a> " if nxt is not None else "")
            + (f"<a id=back href='{e(url('/label', queue=name, i=prev))}'>Back</a>" if prev is not None else "")
            + "</form>"
        )

    def shown(it: dict[str, Any]) -> str:
        if not images:
            return e(it["text"][:120])
        src = e(image_url(it["index"]))
        return f"<img class=thumb src='{src}' alt='' loading=lazy> {e(it['text'][-60:])}"

    rows = [[f"<a href='{e(url('/label', queue=name, i=it['index']))}'>{it['index'] + 1}</a>",
             shown(it), e(it["label"] or "–"), e(it["reason"])] for it in items]  # fmt: skip
    retrain = ""
    if done:
        retrained = st.get("retrained")
        after = (f" <a href='{e(url('/run', path=ws.folders.shown(Path(retrained['run']))))}'>"
                 "the last retrain</a>") if retrained and retrained.get("run") else ""  # fmt: skip
        added = f"these {done} labels" if done > 1 else "this label"
        retrain = button_form("/label/retrain", f"Retrain with {added} added", csrf, {"queue": name},
                              cls="primary") + after  # fmt: skip
    body = (
        head + card + f"<div class=actions>{retrain}</div>"
        f"<p class=hint>Saved as you go to <code>{e(ws.folders.shown(ws.queue(name).csv))}</code>.</p>"
        "<details><summary>Every picked row</summary>"
        + table(["#", "image" if images else "text", "label", "why picked"], rows)
        + "</details>"
    )
    return page(f"Label: {name}", body, active="/label", csrf=csrf)
