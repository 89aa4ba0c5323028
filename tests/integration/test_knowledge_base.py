"""Knowledge bases end to end with the real MiniLM encoder: build, incremental rebuild, exact search, bad
documents, registering a build and searching it from the store, and the kb commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tunesmith import api
from tunesmith.cli import main
from tunesmith.errors import DataError
from tunesmith.knowledge.base import KnowledgeBase

DOCS = {
    "refunds.md": "# Refunds\n\nRefunds are paid to the original card within fourteen days of the return.\n\n"
    "## Exceptions\n\nGift cards and sale items cannot be refunded.\n",
    "shipping.rst": "Shipping\n========\n\nParcels leave the warehouse every weekday before noon.\n\n"
    "International\n-------------\n\nDeliveries abroad take five to ten working days and may pay customs duty.\n",
    "accounts.html": "<h1>Accounts</h1><p>To reset a forgotten password, use the link on the sign-in page.</p>"
    "<h2>Closing</h2><p>An account is closed by writing to support; its data is deleted after thirty days.</p>",
    "notes.txt": "The office is closed on public holidays.\n\nPhone support answers from nine to five.\n",
}


def _docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture()
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNESMITH_KNOWLEDGE", str(tmp_path / "kb"))
    monkeypatch.setenv("TUNESMITH_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    return _docs(tmp_path / "docs")


def _rows(kb: KnowledgeBase) -> list[tuple]:
    with sqlite3.connect(kb.index.path) as con:
        return con.execute("SELECT path, first_line, last_line, heading, text FROM chunks ORDER BY id").fetchall()


def test_build_search_and_incremental_rebuild(kb_env: Path) -> None:
    first = api.kb_build([str(kb_env)], "help")
    assert {k: len(v) for k, v in first.files.items()} == {"added": 4, "changed": 0, "unchanged": 0, "removed": 0}
    assert first.chunks == first.chunks_embedded == 7 and first.version == 1  # notes.txt: one chunk of two paragraphs
    kb = KnowledgeBase.named("help")
    rows = _rows(kb)
    assert ("docs/shipping.rst", 9, 9, "Shipping > International",
            "Deliveries abroad take five to ten working days and may pay customs duty.") in rows  # fmt: skip

    hits = api.kb_search("help", ["how long until my parcel arrives in another country?", "I forgot my password"], 3)
    assert [h[0].heading for h in hits] == ["Shipping > International", "Accounts"]
    assert hits[1][0].where() == "docs/accounts.html:1" and hits[0][0].score > hits[0][1].score

    # Exact search: the same order as scoring every chunk by hand.
    enc = kb.encoder()
    q = enc.encode(["when is the office closed"])
    ids, vecs = kb.index.matrix()
    brute = ids[np.argsort(-(vecs @ q[0]), kind="stable")][:5]
    assert [h.id for h in kb.index.search(q, 5)[0]] == list(brute)

    # Nothing changed: nothing embedded, same build.
    again = api.kb_build([str(kb_env)], "help")
    assert again.chunks_embedded == 0 and again.version == 1 and again.fingerprint == first.fingerprint

    # One file changed, one removed, one added: only their chunks are embedded; a new build is recorded.
    (kb_env / "notes.txt").write_text("The office is closed on public holidays and on Sundays.\n")
    (kb_env / "refunds.md").unlink()
    (kb_env / "returns.md").write_text("# Returns\n\nReturn labels are printed from the order page.\n")
    third = api.kb_build([str(kb_env)], "help")
    assert {k: sorted(v) for k, v in third.files.items()} == {
        "added": ["docs/returns.md"], "changed": ["docs/notes.txt"],
        "unchanged": ["docs/accounts.html", "docs/shipping.rst"], "removed": ["docs/refunds.md"],
    }  # fmt: skip
    assert third.chunks_embedded == 2 and third.chunks == 6 and third.version == 2
    assert third.fingerprint != first.fingerprint
    assert not any(r[0] == "docs/refunds.md" for r in _rows(kb))
    top = api.kb_search("help", ["Sundays"], 1)[0][0]
    assert top.source == "docs/notes.txt" and "Sundays" in top.text

    # A new chunk size re-embeds everything, and says why.
    fourth = api.kb_build([str(kb_env)], "help", chunk_size=60, overlap=0)
    assert fourth.rebuilt_all == "chunk_size, chunk_overlap changed" and fourth.chunks_embedded == fourth.chunks


def test_bad_documents_stop_the_build_and_write_nothing(kb_env: Path) -> None:
    (kb_env / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        api.kb_build([str(kb_env), "missing.md"], "help")
    assert sorted((p.check, Path(p.file).name) for p in err.value.problems) == [
        ("missing", "missing.md"), ("unreadable", "latin.txt"),
    ]  # fmt: skip
    assert not (kb_env.parent / "kb" / "help").exists()
    (kb_env.parent / "empty").mkdir()
    (kb_env.parent / "empty" / "data.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="no documents of a kind"):
        api.kb_build([str(kb_env.parent / "empty")], "help")


def test_warnings_name_file_and_line(kb_env: Path) -> None:
    (kb_env / "copy.md").write_text("# Copy\n\nParcels leave the warehouse every weekday before noon.\n")
    (kb_env / "blank.md").write_text("\n\n")
    (kb_env / "long.txt").write_text("intro\n\n" + " ".join(["word"] * 400) + "\n")
    result = api.kb_build([str(kb_env)], "help", chunk_size=300, overlap=50)
    found = {(p.check, p.file, p.line) for p in result.report.warnings}
    assert ("duplicate_chunk", "docs/shipping.rst", 4) in found or ("duplicate_chunk", "docs/copy.md", 3) in found
    assert ("empty_document", str(kb_env / "blank.md"), None) in found
    assert ("long_paragraph", "docs/long.txt", 3) in found
    # The blank file is remembered: the next build finds it unchanged.
    assert "docs/blank.md" in api.kb_build([str(kb_env)], "help").files["unchanged"]


def test_register_then_search_the_stored_version_and_cli(kb_env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["kb", "build", str(kb_env), "--name", "help"]) == 0
    out = capsys.readouterr().out
    assert "7 chunks from 4 files" in out and "4 added" in out
    assert main(["kb", "register", "help"]) == 0
    assert "registered help@v1" in capsys.readouterr().out
    assert main(["kb", "search", "help@v1", "I forgot my password", "--k", "2", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["rank"] for x in lines] == [1, 2] and lines[0]["source"] == "docs/accounts.html"
    assert main(["kb", "list"]) == 0
    assert "help" in capsys.readouterr().out
    assert main(["kb", "build", str(kb_env), "--name", "../escape"]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert main(["kb", "rm", "help"]) == 0
    assert main(["kb", "search", "help", "x"]) == 2
    assert "not found" in capsys.readouterr().err


def test_pairs_from_section_titles(kb_env: Path, capsys: pytest.CaptureFixture) -> None:
    (kb_env / "faq.md").write_text("# Help FAQ\n\n## How do I reset my password?\n\nUse the link on the sign-in "
                                   "page.\n\nIt expires in an hour.\n\n## Examples\n\nNone yet.\n")  # fmt: skip
    api.kb_build([str(kb_env)], "help")
    assert main(["kb", "pairs", "help", "--output", str(kb_env.parent / "pairs.jsonl")]) == 0
    assert "wrote 1 (query, passage) pairs" in capsys.readouterr().out
    pairs = [json.loads(x) for x in (kb_env.parent / "pairs.jsonl").read_text().splitlines()]
    assert pairs == [{"query": "How do I reset my password?", "source": "docs/faq.md:5-7",
                      "passage": "Use the link on the sign-in page.\n\nIt expires in an hour."}]  # fmt: skip
