"""The dashboard's labelling queue with images (the tiny ViT): picks from a folder pool and an .npz pool, each
picked image served as PNG with the pool's own pixels, the page shows pictures, and a retrain trains on the
source run's images plus the ones labelled in the queue. Bad requests are 4xx."""

from __future__ import annotations

import csv
import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import COLOURS_RGB, image_config, make_image
from tests.ui.conftest import TOKEN
from tests.ui.test_workspace import wait
from tunesmith import api
from tunesmith.errors import InputError

CLASSES = list(COLOURS_RGB)


@pytest.fixture()
def home(tiny_vit, image_data, tmp_path, monkeypatch):
    """A workspace with the tiny ViT, its training images, a finished image run, a folder pool of 12 unlabelled
    images and the same 12 as an .npz."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNESMITH_NO_PROGRESS", "1")
    home = tmp_path / "ws"
    shutil.copytree(tiny_vit, home / "models" / "vit")
    train, val = image_data
    shutil.copytree(train, home / "data" / "train")
    shutil.copytree(val, home / "data" / "validation")
    pool = home / "data" / "pool"
    pool.mkdir()
    pixels = [make_image(CLASSES[i % 3], 700 + i) for i in range(12)]
    for i, px in enumerate(pixels):
        Image.fromarray(px).save(pool / f"u{i:02d}.png")
    np.savez(home / "data" / "pool.npz", images=np.stack(pixels))
    cfg = image_config(home / "models" / "vit", home / "data" / "train", home / "data" / "validation",
                       home / "runs", train__epochs=2)  # fmt: skip
    run = api.finetune(cfg)
    return home, run.path


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_an_image_queue_shows_the_pools_pixels_and_retrains_with_the_labelled_images(home):
    home, run = home
    ws = api.workspace([home])
    assert [r.path for r in ws.labelling_runs()] == [run]
    assert "data/pool.npz" in ws.pool_files()

    # the random tiny ViT sees every synthetic picture alike: near-twins are not set aside here (near=1)
    job = ws.label_next(str(run), "data/pool", 4, "imgs", near=1.0)
    assert "--strategy" not in job.argv, "the task's own default strategy (margin for images)"
    assert wait(job.id, ws).status == "done", ws.jobs.log(job.id)[-2000:]
    st = ws.queue("imgs").state()
    assert st["images"] and st["ready"] and len(st["items"]) == 4 and st["input_column"] == "path"
    assert set(st["classes"]) == set(CLASSES)
    for it in st["items"]:
        want = np.asarray(Image.open(home / "data" / "pool" / it["text"]).convert("RGB"))
        assert np.array_equal(_png(ws.queue("imgs").picture_png(it["index"])), want)

    # two labelled: the retrain's training listing holds the 90 training images and these two, as PNG copies
    ws.queue("imgs").set_label(0, "red")
    ws.queue("imgs").set_label(2, "blue")
    retrain = ws.retrain("imgs")
    assert wait(retrain.id, ws, 240).status == "done", ws.jobs.log(retrain.id)[-3000:]
    listing = home / "labels" / "imgs-train" / "train.csv"
    with listing.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 90 + 2 and list(rows[0]) == ["path", "label"]
    added = {r["path"]: r["label"] for r in rows[-2:]}
    for index, label in ((0, "red"), (2, "blue")):
        picked = np.asarray(Image.open(home / "data" / "pool" / st["items"][index]["text"]).convert("RGB"))
        match = [p for p, lab in added.items() if np.array_equal(np.asarray(Image.open(listing.parent / p)), picked)]
        assert match and added[match[0]] == label
    assert ws.run(retrain.run).status == "finished"


def test_an_npz_pool_and_the_dashboards_image_route(home):
    from fastapi.testclient import TestClient

    from tunesmith.ui.app import create_app

    home, run = home
    ws = api.workspace([home])
    job = ws.label_next(str(run), "data/pool.npz", 3, "arr", near=1.0)
    assert wait(job.id, ws).status == "done", ws.jobs.log(job.id)[-2000:]
    items = ws.queue("arr").state()["items"]
    assert all(re.fullmatch(r"pool\.npz\[\d+\]", it["text"]) for it in items)
    with np.load(home / "data" / "pool.npz") as z:
        for it in items:
            row = int(it["text"].split("[")[1][:-1])
            assert np.array_equal(_png(ws.queue("arr").picture_png(it["index"])), z["images"][row])

    with TestClient(create_app(ws, TOKEN)) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False).status_code == 303
        page = c.get("/label", params={"queue": "arr"}).text
        created = int(ws.queue("arr").state()["created"])
        assert f"<img id=label-image src='/label/image?queue=arr&amp;i=0&amp;v={created}'" in page
        assert "pool row" in page
        r = c.get("/label/image", params={"queue": "arr", "i": 1})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert np.array_equal(_png(r.content), _png(ws.queue("arr").picture_png(1)))
        assert c.get("/label/image", params={"queue": "arr", "i": 9}).status_code == 400
        assert c.get("/label/image", params={"queue": "arr", "i": "x"}).status_code in (400, 422)
        assert c.get("/label/image", params={"queue": "../arr", "i": 0}).status_code == 400
        assert c.get("/label/image", params={"queue": "nope", "i": 0}).status_code == 400
        index = c.get("/label").text
        assert f"<option value='{ws.run(str(run)).shown}'" in index


def test_a_pool_cell_may_not_leave_the_pools_folder(home):
    from tunesmith.tasks.image_classification.pool import ImagePool

    home, _ = home
    kind = ImagePool()
    with pytest.raises(InputError, match="not an image path inside"):
        kind.picture(home / "data" / "pool", "../train/red/0.png")
    with pytest.raises(InputError, match="no such image"):
        kind.picture(home / "data" / "pool.npz", "pool.npz[12]")
    with pytest.raises(InputError, match="not a row of pool.npz"):
        kind.picture(home / "data" / "pool.npz", "other.npz[0]")
    assert kind.picture(home / "data" / "pool.npz", "pool.npz[11]").shape == (32, 32, 3)


def test_the_tenth_class_is_key_0_and_one_label_reads_as_one(tmp_path):
    from types import SimpleNamespace

    from tunesmith.ui import forms

    classes = [f"c{k}" for k in range(11)]
    items = [{"index": i, "text": f"pool.npz[{i}]", "label": "c3" if i == 1 else "", "reason": "margin 0.1",
              "line": i + 1} for i in range(3)]  # fmt: skip
    state = {"ready": True, "items": items, "done": 1, "classes": classes, "images": True}
    queue = SimpleNamespace(state=lambda: state, csv=tmp_path / "q.csv")
    ws = SimpleNamespace(queue=lambda name: queue, folders=SimpleNamespace(shown=lambda p: "labels/q.csv"))
    page = forms.label_page(ws, "csrf", "q")
    assert "data-key='9' class=choice><kbd>9</kbd> c8<" in page
    assert "data-key='0' class=choice><kbd>0</kbd> c9<" in page
    assert "value='c10' class=choice>c10<" in page, "an eleventh class has no key: it is clicked"
    assert "<kbd>0</kbd> label" in page and "Retrain with this label added" in page
    assert "<img id=label-image src='/label/image?queue=q&amp;i=0&amp;v=0'" in page
