"""docs/ui.md's screenshots: the dashboard over real runs, in headless Chromium at a laptop's and a phone's width.

    python -m tests.ui.tour --out docs/screenshots/ui      (make ui-screenshots; about 6 minutes on 2 CPU cores)

The workspace is the repository, as `make ui` serves it: runs/ holds `make demo`'s MiniLM run and `make screenshots`'
runs (MiniLM on the recipe suite, SmolLM2 with LoRA, ...). A MiniLM run on Rotten Tomatoes is started from the New
run form and caught mid-training; it and the demo's run are registered in a private store and promoted through the
gate; the chat runs SmolLM2 beside its base model."""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from tests.browser import chromium
from tests.ui.conftest import TOKEN, free_port

REPO = Path(__file__).resolve().parents[2]


def shoot(page, out: Path, name: str) -> None:
    """The page as it is, whole, at 1280 px and at a phone's 390 px (a form's result is not reloaded)."""
    page.screenshot(path=str(out / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})
    page.screenshot(path=str(out / f"{name}-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    print(f"  {name}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/screenshots/ui")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = sorted((REPO / "runs" / "screenshots").glob("*-*-*"))
    text = next(r for r in runs if "-text-classification-" in r.name)
    chat = next(r for r in runs if "-causal-lm-" in r.name)
    spare = Path(tempfile.mkdtemp(prefix="tunesmith-tour-"))
    os.environ["TUNESMITH_STORE"] = str(spare / "store")  # a private model store
    with open(REPO / "data" / "rotten_tomatoes" / "validation.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(spare / "unlabelled.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        w.writerows([[r["text"]] for r in rows[:300]])

    import uvicorn
    from playwright.sync_api import sync_playwright

    from tunesmith import api
    from tunesmith.ui.app import create_app

    ws = api.workspace([REPO, spare])  # as `make ui` serves the repository, with the pool in a second folder
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ws, TOKEN), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        page.goto(base + "/")
        shoot(page, out, "login")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")

        # a MiniLM run from the form, followed live
        page.goto(base + "/new")
        page.fill("#name", "reviews")
        page.fill("#model", "minilm-l6")
        page.fill("#train", "data/rotten_tomatoes/train.csv")
        page.fill("#validation", "data/rotten_tomatoes/validation.csv")
        page.fill("#epochs", "2")
        page.fill("#extra", "train.max_length=64")
        page.click("text=Check the data")
        page.wait_for_selector("#check")
        shoot(page, out, "new-run")
        page.click("text=Start training")
        page.wait_for_url(re.compile(r".*/run\?path=.*"), timeout=300_000)
        page.wait_for_function(
            "() => { const s = document.getElementById('f-step'); if (!s) return false;"
            " const [a, b] = s.textContent.split(' / ').map(Number); return b > 0 && a > b * 0.4; }",
            timeout=600_000,
        )
        page.wait_for_timeout(2000)
        shoot(page, out, "run-live")
        page.wait_for_selector("iframe.report", timeout=900_000)
        live_run = page.url
        page.wait_for_timeout(1500)
        shoot(page, out, "run")

        page.goto(base + "/")
        shoot(page, out, "runs")
        live_path = live_run.split("path=", 1)[1]
        earlier = next((r for r in ws.runs() if r.path.name.endswith("d55a")), None)  # `make demo`'s run
        if earlier is not None:  # the same validation data: the comparison is paired
            page.goto(base + "/compare?path=" + live_path + "&path=" + quote(earlier.shown))
            shoot(page, out, "compare")

        # register the two Rotten Tomatoes runs and promote the newer one through the gate
        first = quote(earlier.shown) if earlier is not None else quote(f"runs/screenshots/{text.name}")
        for target, alias in ((first, "prod"), (live_path, "")):
            page.goto(base + "/run?path=" + target)
            page.fill("form.register input[name=name]", "reviews")
            page.fill("form.register input[name=alias]", alias)
            page.click("form.register button")
            page.wait_for_selector(".badge.done, .badge.failed", timeout=300_000)
        page.goto(base + "/models")
        page.locator("tbody tr").first.locator("button:has-text('Promote')").click()
        page.wait_for_selector("#gate", timeout=300_000)
        shoot(page, out, "models-gate")
        page.locator("#gate button").click()
        shoot(page, out, "models")

        # try: classify with the promoted version, chat with SmolLM2 beside its base model
        page.goto(base + "/try?model=" + quote("reviews@prod"))
        page.fill("#text", "A gripping, beautifully acted film that never lets go.")
        page.click("button:has-text('Classify')")
        page.wait_for_selector("#prediction")
        shoot(page, out, "try")
        page.goto(base + "/try?model=" + quote(f"runs/screenshots/{chat.name}"))
        page.fill("#message", "Do you like music?")
        page.fill("#max-tokens", "48")
        page.click("#chat-form button[type=submit]")
        page.wait_for_selector("#tuned-log li.assistant", timeout=300_000)
        shoot(page, out, "try-chat")

        # label: ten picks from unlabelled reviews, three labelled with the keyboard
        page.goto(base + "/label?source=" + live_path)
        page.fill("#pool", str(spare / "unlabelled.csv"))
        page.fill("#k", "10")
        page.fill("#qname", "reviews-next")
        page.click("button:has-text('Pick')")
        page.wait_for_selector(".badge.done", timeout=300_000)
        page.click("text=Label the picks")
        page.wait_for_selector("#label-form")
        page.wait_for_load_state("load")  # the keys are read by the page's script
        for key in ("1", "2", "1"):
            with page.expect_navigation():
                page.keyboard.press(key)
        shoot(page, out, "label")
        page.goto(base + "/jobs")
        shoot(page, out, "jobs")
        browser.close()
    server.should_exit = True
    print(f"screenshots in {out}; the store and the pool in {spare}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
