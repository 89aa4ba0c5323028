"""A generator trained with a knowledge base: its questions carry retrieved chunks in training, evaluation and use;
predict, the server and the OpenAI route return the sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import tunesmith
from tests.conftest import ANIMALS, COLOURS, llm_config, make_chats, write_jsonl
from tunesmith import api
from tunesmith.cli import main
from tunesmith.serve import ServeSettings, create_app

TOKEN = "t" * 32


@pytest.fixture(scope="module")
def kb_run(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kbgen")
    docs = root / "docs"
    docs.mkdir()
    for a, sound in ANIMALS.items():
        (docs / f"{a}.md").write_text(f"# The {a}\n\nA {a} says {sound}.\n")
    for c, colour in COLOURS.items():
        (docs / f"{c}.txt").write_text(f"The {c} is {colour}.\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_KNOWLEDGE", str(root / "kb"))
    api.kb_build([str(docs)], "facts")
    chats = make_chats(120, seed=5)
    train, val = write_jsonl(root / "train.jsonl", chats[:96]), write_jsonl(root / "validation.jsonl", chats[96:])
    cfg = llm_config(tiny_llama, train, val, root / "runs", train__epochs=1)
    cfg["data"]["knowledge_base"] = "facts"
    cfg["retrieval"] = {"k": 2, "oracle_share": 0.75}
    run = tunesmith.finetune(cfg)
    yield run.path, root
    mp.undo()


def test_training_questions_carry_chunks_and_the_run_records_the_base(kb_run: tuple[Path, Path]) -> None:
    run, root = kb_run
    m = json.loads((run / "manifest.json").read_text())
    kb = m["knowledge_base"]
    assert (kb["name"], kb["k"], kb["build"]) == ("facts", 2, 1) and Path(kb["path"]) == (root / "kb" / "facts")
    stats = json.loads((run / "data_report.json").read_text())["stats"]["knowledge_base"]
    n = 96 - stats_selection(run)
    assert stats["answer chunk found"] == f"{n} of {n} training questions"  # every answer is in one chunk
    assert 0.55 < stats["given the answer chunk"] / n < 0.95  # retrieval.oracle_share 0.75
    first = json.loads((run / "validation_generations.jsonl").read_text().splitlines()[0])
    prompt = first["prompt"][-1]["content"] if isinstance(first["prompt"], list) else first["prompt"]
    assert prompt.startswith("Answer the question from the documents below") and prompt.count("\n[") == 2  # k = 2
    report = json.loads((run / "report.json").read_text())
    assert 0.0 <= report["models"]["tuned"]["support"] <= 1.0 and "support" in report["comparisons"]


def stats_selection(run: Path) -> int:
    text = json.loads((run / "data_report.json").read_text())["stats"].get("selection", "")
    return int(text.split()[0]) if text and text[0].isdigit() else 0


def test_use_retrieves_before_answering_and_returns_sources(kb_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = kb_run
    model = tunesmith.load(run)
    grounded, hits = model.ground("What does a dog say?")
    assert hits[0].source.endswith("docs/dog.md") and "A dog says woof." in grounded
    out = model.complete("What does a dog say?", max_new_tokens=4)
    assert out["sources"][0]["source"].endswith("docs/dog.md") and out["sources"][0]["lines"] == [3, 3]
    assert out["prompt_tokens"] == model.count_tokens(grounded)

    (tmp_path / "q.jsonl").write_text(json.dumps({"prompt": "What colour is the snow?"}) + "\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "q.jsonl"), "--output", str(tmp_path / "a.jsonl"),
                 "--max-new-tokens", "4"]) == 0  # fmt: skip
    row = json.loads((tmp_path / "a.jsonl").read_text())
    assert row["sources"][0]["source"].endswith("docs/snow.txt") and "completion" in row

    client = TestClient(create_app(model, "facts-bot", ServeSettings(token=TOKEN)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post("/v1/generate", json={"prompt": "What does a cow say?", "max_new_tokens": 4}, headers=auth)
    assert r.status_code == 200 and r.json()["sources"][0]["source"].endswith("docs/cow.md")
    r = client.post("/v1/generate", json={"prompt": "What does a cow say?", "max_new_tokens": 4, "stream": True},
                    headers=auth)  # fmt: skip
    events = [json.loads(x[6:]) for x in r.text.split("\n\n") if x.startswith("data: {")]
    assert events[0]["sources"][0]["source"].endswith("docs/cow.md") and all("text" in e for e in events[1:])
    ask = [{"role": "user", "content": "What colour is the sky?"}]
    r = client.post("/v1/chat/completions", headers=auth, json={"model": "facts-bot", "messages": ask, "max_tokens": 4})
    assert r.status_code == 200 and r.json()["sources"][0]["source"].endswith("docs/sky.txt")


def test_plain_text_data_cannot_use_a_knowledge_base(kb_run: tuple[Path, Path], tiny_llama: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    _, root = kb_run
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"text": f"plain document number {i}"} for i in range(20)])
    cfg = llm_config(tiny_llama, docs, None, tmp_path / "runs")
    cfg["data"]["knowledge_base"] = str(root / "kb" / "facts")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["validate", str(tmp_path / "c.yaml")]) == 2
    assert "needs questions with answers" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_registered_knowledge_base_is_named_by_its_version(
    kb_run: tuple[Path, Path], tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = kb_run
    monkeypatch.setenv("TUNESMITH_KNOWLEDGE", str(root / "kb"))
    monkeypatch.setenv("TUNESMITH_STORE", str(tmp_path / "store"))
    row = api.kb_register("facts")
    assert (row["name"], row["version"], row["task"]) == ("facts", 1, "knowledge-base")
    chats = make_chats(40, seed=9)
    cfg = llm_config(tiny_llama, write_jsonl(tmp_path / "t.jsonl", chats[:30]), write_jsonl(tmp_path / "v.jsonl",
                     chats[30:]), tmp_path / "runs")  # fmt: skip
    cfg["data"]["knowledge_base"] = "facts@v1"
    stats = api.validate(cfg).stats["knowledge_base"]
    assert Path(stats["path"]).is_relative_to(tmp_path / "store") and stats["fingerprint"] == row["manifest"][
        "knowledge_base"]["fingerprint"]  # fmt: skip
