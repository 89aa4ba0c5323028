"""The dashboard in a real browser (Playwright driving Debian's Chromium): log in, start a tiny run from the form
and watch it finish on its page, compare two runs, register and promote a version through the gate, label three
suggested examples with the keyboard and retrain, classify in the playground and chat with a causal LM beside its
general model. Every page is saved as a screenshot (TUNESMITH_UI_SHOTS=folder keeps them, docs/ui.md shows them)
and read back at a phone's width: nothing runs past the page's edge."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

import tunesmith
from tests.conftest import image_config, llm_config, make_chats, make_image, write_jsonl
from tests.ui.conftest import TOKEN

RUN_S = 240_000  # ms a tiny training may take from the form to its report (imports included)


def chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="make install installs playwright (dev extras)")
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium: `make debian-data` installs the Debian package chromium-headless-shell")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("TUNESMITH_UI_SHOTS")
    folder = Path(keep) if keep else tmp_path_factory.mktemp("ui-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Visit:
    """One logged-in browser page. ``shot(name)`` saves the page as it is (whole) at 1280 px, then at a phone's 390
    px (the same page: a form's result is not reloaded), and records how wide it is there."""

    def __init__(self, browser, server: str, shots: Path):
        self.server, self.shots, self.wide = server, shots, {}
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)

    def go(self, where: str) -> None:
        self.page.goto(self.server + where)

    def shot(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        self.page.screenshot(path=str(self.shots / f"{name}-1280.png"), full_page=True)
        self.page.set_viewport_size({"width": 390, "height": 800})
        self.wide[name] = self.page.evaluate("document.documentElement.scrollWidth")
        self.page.screenshot(path=str(self.shots / f"{name}-390.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture(scope="module")
def visit(browser, server, shots, workspace):
    v = Visit(browser, server, shots)
    yield v
    v.context.close()


def test_log_in(visit):
    p = visit.page
    visit.go("/")
    assert p.url.endswith("/login?next=%2F")
    visit.shot("login")
    p.fill("#token", "not the token at all")
    p.click("button[type=submit]")
    assert p.locator(".alert.error").inner_text().startswith("That is not the token")
    p.fill("#token", TOKEN)
    p.click("button[type=submit]")
    assert p.locator("h1").inner_text() == "Runs"
    assert "No runs yet" in p.inner_text("main")


def start_run(visit, name: str, epochs: int) -> str:
    p = visit.page
    visit.go("/new")
    p.fill("#name", name)
    p.select_option("#task", "text-classification")
    p.fill("#model", "models/tiny-bert")
    p.select_option("#method", "full")
    p.fill("#train", "data/train.csv")
    p.fill("#validation", "data/validation.csv")
    p.fill("#epochs", str(epochs))
    p.fill("#extra", "train.batch_size=16\ntrain.learning_rate=3e-3\ntrain.max_length=32\ntrain.threads=1\n"
                     "train.seed=7\neval.bootstrap=200")  # fmt: skip
    p.click("text=Check the data")
    check = p.locator("#check")
    assert "The data passed every check" in check.inner_text()
    if name == "first":
        visit.shot("new-run")
    p.click("text=Start training")
    p.wait_for_url(re.compile(r".*/run\?path=runs.*"), timeout=RUN_S)  # the job page follows the run's page
    if name == "first":
        p.wait_for_selector("#live")
        visit.shot("run-live")
    p.wait_for_selector("iframe.report", timeout=RUN_S)  # the page reloads with the report when training ends
    assert "finished" in p.locator("#facts").inner_text()
    return p.url.split("path=", 1)[1]


def test_start_a_run_from_the_form_and_watch_it_finish(visit, workspace):
    path = start_run(visit, "first", epochs=3)
    p = visit.page
    assert re.search(r"accuracy \d+\.\d%", p.inner_text("main"))
    frame = p.frame_locator("iframe.report")
    assert "Base vs tuned" in frame.locator("body").inner_text()
    visit.shot("run")
    config = (workspace / "configs" / "first.yaml").read_text()
    assert "tiny-bert" in config and "epochs: 3" in config
    assert (workspace / path.replace("%2F", "/") / "manifest.json").is_file()


def test_compare_two_runs(visit):
    start_run(visit, "second", epochs=1)
    p = visit.page
    visit.go("/")
    assert p.locator("tbody tr").count() == 2
    visit.shot("runs")
    for box in p.locator("tbody input[type=checkbox]").all():
        box.check()
    p.click("text=Compare the ticked runs")
    main = p.inner_text("main")
    # the paired difference in accuracy over the 80 held-out examples both runs scored, with its interval
    assert re.search(r"accuracy\t[+-]\d+\.\d pts\t[+-]\d+\.\d pts to [+-]\d+\.\d pts\t80\t", main)
    rows = p.locator("h2:has-text('Config keys that differ') + div table").inner_text()
    assert "train.epochs" in rows and "data.train" not in rows
    visit.shot("compare")


def test_register_and_promote_through_the_gate(visit):
    p = visit.page
    visit.go("/")
    links = p.locator("tbody a").all()
    newest, oldest = links[0].get_attribute("href"), links[-1].get_attribute("href")
    for where, alias in ((oldest, "prod"), (newest, "")):
        visit.go(where)
        p.fill("form.register input[name=name]", "toy")
        p.fill("form.register input[name=alias]", alias)
        p.click("form.register button")
        p.wait_for_selector(".badge.done", timeout=120_000)
    visit.go("/models")
    assert p.locator("section h2").first.inner_text() == "toy"
    assert "@prod" in p.locator("tbody tr").last.inner_text()  # v1 holds prod
    p.locator("tbody tr").first.locator("button:has-text('Promote')").click()
    gate = p.locator("#gate")
    assert "Move toy@prod from v1 to v2" in gate.inner_text()
    table = gate.locator("table").inner_text()  # the gate's table: v1 against v2 on v1's evaluation set
    assert "toy@v1" in table and "accuracy" in table
    # v2 trained one epoch to v1's three: the gate measures it worse and refuses; moving it anyway is recorded
    assert "The gate refuses" in gate.inner_text() and "regresses" in table
    visit.shot("models-gate")
    gate.locator("button").click()
    said = p.locator(".alert.info").inner_text()
    assert "toy@prod now points at v2" in said and "forced past the gate" in said
    assert "@prod" in p.locator("tbody tr").first.inner_text()
    visit.shot("models")


def test_label_three_suggested_examples_with_the_keyboard_and_retrain(visit, workspace):
    p = visit.page
    visit.go("/label")
    p.fill("#pool", "data/pool.csv")
    p.fill("#k", "5")
    p.fill("#qname", "toy-next")
    p.click("button:has-text('Pick')")
    p.wait_for_selector(".badge.done", timeout=120_000)
    p.click("text=Label the picks")
    p.wait_for_selector("#label-form")
    visit.shot("label")  # waits for the page to load: its script reads the keys
    for key in ("1", "2", "1"):
        before = p.locator("#label-text").inner_text()
        with p.expect_navigation():
            p.keyboard.press(key)
        assert p.locator("#label-text").inner_text() != before
    assert "3 of 5 labelled" in p.inner_text("main")
    with open(workspace / "labels" / "toy-next.csv", newline="") as fh:
        labels = [row["label"] for row in csv.DictReader(fh)]
    classes = p.locator("#label-form button.choice").all_inner_texts()  # "1 pos", "2 neg": the run's class order
    first, second = (c.split()[-1] for c in classes)
    assert sorted(x for x in labels if x) == sorted([first, second, first])
    p.click("text=Retrain with these 3 labels added")
    p.wait_for_url(re.compile(r".*/run\?path=runs.*"), timeout=RUN_S)
    p.wait_for_selector("iframe.report", timeout=RUN_S)
    merged = (workspace / "labels" / "toy-next-train.csv").read_text().splitlines()
    assert len(merged) == 1 + 160 + 3


def test_classify_in_the_playground(visit):
    p = visit.page
    visit.go("/try?model=" + quote("toy@prod"))
    p.fill("#text", "a brilliant and gripping film")
    p.click("button:has-text('Classify')")
    found = p.locator("#prediction").inner_text()
    assert re.search(r"Prediction: (pos|neg) \(\d+\.\d%\)", found)
    visit.shot("try")


def test_upload_a_file_and_plan_from_the_form(visit, workspace):
    p = visit.page
    visit.go("/new")
    p.set_input_files("#file", str(workspace / "data" / "train.csv"))
    p.click("button:has-text('Upload')")
    assert p.input_value("#train") == "uploads/train.csv"  # the form comes back with the uploaded file chosen
    assert (workspace / "uploads" / "train.csv").read_bytes() == (workspace / "data" / "train.csv").read_bytes()
    p.fill("#name", "planned")
    p.fill("#model", "models/tiny-bert")
    p.select_option("#method", "head")  # a chosen method: the plan probes that one
    p.fill("#validation", "data/validation.csv")
    p.fill("#extra", "train.max_length=32\ntrain.threads=1\ntrain.batch_size=16")
    p.click("text=Plan: time, memory, cost")
    p.wait_for_url(re.compile(r".*/jobs/.*"))
    p.wait_for_selector("#plan", timeout=RUN_S)
    table = p.locator("#plan table").inner_text()
    assert "(recommended)" in table and re.search(r"\d+\.\d\d GiB", table)
    assert p.locator("#plan tbody tr").count() == 1 and "/ head" in table
    assert p.locator("button:has-text('Train the recommended config')").count() == 1
    visit.shot("plan")
    visit.go("/jobs")
    kinds = p.locator("tbody").inner_text()
    assert all(k in kinds for k in ("train", "register", "label-next", "plan"))
    visit.shot("jobs")


def test_classify_an_image_in_the_playground(visit, workspace, tiny_vit, image_data, env, tmp_path):
    train, val = image_data
    run = tunesmith.finetune(image_config(tiny_vit, train, val, workspace / "runs", method="head"))
    picture = tmp_path / "red.png"
    Image.fromarray(make_image("red", seed=99)).save(picture)
    p = visit.page
    visit.go("/try?model=" + quote(str(run.path.relative_to(workspace))))
    p.set_input_files("#image", str(picture))
    p.click("button:has-text('Classify')")
    found = p.locator("#prediction").inner_text()
    assert re.search(r"Prediction: (red|green|blue) \(\d+\.\d%\)", found)
    assert {"red", "green", "blue"} <= set(re.findall(r"\b(red|green|blue)\b", found))
    assert p.locator("#prediction img.preview").get_attribute("src").startswith("data:image/png;base64,")
    visit.shot("try-image")


def test_chat_with_a_causal_lm_beside_its_general_model(visit, workspace, tiny_llama, env):
    chats = make_chats(120, seed=3)
    (workspace / "chat").mkdir(exist_ok=True)
    train = write_jsonl(workspace / "chat" / "train.jsonl", chats[:96])
    val = write_jsonl(workspace / "chat" / "validation.jsonl", chats[96:])
    run = tunesmith.finetune(llm_config(tiny_llama, train, val, workspace / "runs", method="lora",
                                        train__epochs=2, eval__generate_examples=4))  # fmt: skip
    p = visit.page
    visit.go("/try?model=" + quote(str(run.path.relative_to(workspace))))
    p.fill("#message", "What does a cat say?")
    p.fill("#max-tokens", "12")
    p.click("#chat-form button[type=submit]")
    p.wait_for_selector("#tuned-log li.assistant", timeout=60_000)
    assert p.locator("#base-log li.assistant").count() == 1
    assert "tokens" in p.locator("#chat-status").inner_text()
    visit.shot("try-chat")


def test_every_page_fits_a_phone(visit):
    pages = {"login", "runs", "new-run", "run-live", "run", "compare", "models-gate", "models", "label", "try",
             "try-image", "try-chat", "plan", "jobs"}  # fmt: skip
    assert pages <= set(visit.wide)
    wide = {name: width for name, width in visit.wide.items() if width > 390}
    assert not wide, f"pages wider than the phone: {wide}"
