// tunesmith dashboard: live run progress, live job logs, the chat, the labelling keys. No libraries.
"use strict";
const csrf = () => document.querySelector("meta[name=csrf]").content;
const POLL_MS = 1500;

async function getJSON(url) {
  const r = await fetch(url, {headers: {accept: "application/json"}, credentials: "same-origin"});
  if (!r.ok) throw new Error(`${r.status}`);
  return r.json();
}

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.round(s);
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function followRun(section) {
  const path = section.dataset.path;
  const tick = async () => {
    let p;
    try { p = await getJSON(`/api/progress?path=${encodeURIComponent(path)}`); } catch (e) { return setTimeout(tick, POLL_MS * 2); }
    const bar = document.getElementById("bar");
    if (p.total) { bar.max = p.total; bar.value = p.step; }
    document.getElementById("f-step").textContent = `${p.step} / ${p.total || "?"}`;
    document.getElementById("f-epoch").textContent = p.epoch === null ? "–" : Number(p.epoch).toFixed(2);
    document.getElementById("f-loss").textContent = p.loss === null ? "–" : Number(p.loss).toPrecision(4);
    document.getElementById("f-speed").textContent = p.samples_per_s ? Number(p.samples_per_s).toPrecision(3) : "–";
    document.getElementById("f-eta").textContent = fmtDuration(p.eta_s);
    const elapsed = document.getElementById("run-time");
    if (elapsed && p.elapsed_s !== null) elapsed.textContent = fmtDuration(p.elapsed_s);
    if (p.charts.length) document.getElementById("charts").innerHTML = p.charts.join("");  // SVG drawn by the server
    if (p.status !== "running") { location.reload(); return; }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

function followJob(pre) {
  const id = pre.dataset.job;
  const tick = async () => {
    let j;
    try { j = await getJSON(`/api/jobs/${encodeURIComponent(id)}`); } catch (e) { return setTimeout(tick, POLL_MS * 2); }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = j.log;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    if (j.run_url && (j.kind === "train" || j.kind === "resume")) { location.href = j.run_url; return; }
    if (j.status !== "running") { location.reload(); return; }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

function chat(section) {
  const model = section.dataset.model;
  const form = document.getElementById("chat-form");
  const box = document.getElementById("message");
  const status = document.getElementById("chat-status");
  const logs = {base: document.getElementById("base-log"), tuned: document.getElementById("tuned-log")};
  let history = {base: [], tuned: []};
  const add = (which, role, text, sources) => {
    const li = document.createElement("li");
    li.className = role;
    li.textContent = text;
    if (sources && sources.length) {
      const s = document.createElement("span");
      s.className = "src";
      s.textContent = "sources: " + sources.map(x => `${x.source}:${(x.lines || []).join("-")}`).join("; ");
      li.appendChild(s);
    }
    logs[which].appendChild(li);
  };
  document.getElementById("chat-reset").addEventListener("click", () => {
    history = {base: [], tuned: []};
    logs.base.innerHTML = ""; logs.tuned.innerHTML = "";
    status.textContent = "";
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    for (const w of ["base", "tuned"]) { history[w].push({role: "user", content: text}); add(w, "user", text); }
    box.value = "";
    status.textContent = "Both models are answering…";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const r = await fetch("/api/chat", {
        method: "POST", credentials: "same-origin",
        headers: {"content-type": "application/json", "x-csrf-token": csrf()},
        body: JSON.stringify({model, messages: history.tuned,
                              max_new_tokens: Number(document.getElementById("max-tokens").value) || 96}),
      });
      const out = await r.json();
      if (!r.ok) throw new Error(out.detail || r.status);
      for (const w of ["base", "tuned"]) {
        const a = out[w];
        history[w].push({role: "assistant", content: a.text});
        add(w, "assistant", a.text, a.sources);
      }
      status.textContent = `Tuned: ${out.tuned.completion_tokens} tokens; general model: ${out.base.completion_tokens} tokens.`;
    } catch (e) {
      status.textContent = `Not answered: ${e.message}`;
    } finally {
      button.disabled = false;
      box.focus();
    }
  });
}

function labelKeys() {
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    const b = document.querySelector(`#label-form button[data-key="${ev.key}"]`);
    if (b) { ev.preventDefault(); b.click(); return; }
    if (ev.key === "s" && document.getElementById("skip")) { ev.preventDefault(); document.getElementById("skip").click(); }
    if (ev.key === "b" && document.getElementById("back")) { ev.preventDefault(); document.getElementById("back").click(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live && live.dataset.live === "1") followRun(live);
  const log = document.getElementById("job-log");
  if (log && log.dataset.live === "1") { log.scrollTop = log.scrollHeight; followJob(log); }
  const c = document.getElementById("chat");
  if (c) chat(c);
  if (document.getElementById("label-form")) labelKeys();
  const picking = document.getElementById("picking");
  if (picking) setTimeout(() => location.reload(), POLL_MS * 2);
});
