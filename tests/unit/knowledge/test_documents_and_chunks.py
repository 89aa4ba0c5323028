"""Readers keep each word's line; chunks follow sections and paragraphs, with exact line ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.data.validate import DataReport
from tunesmith.knowledge.chunking import chunk_paragraphs
from tunesmith.knowledge.documents import collect, kind_of, read_document

RST = """:tocdepth: 2

=========
Handbook
=========

Intro paragraph one
spans two lines.

Installing
==========

Run the installer.
Then restart.

.. note::

   Keep the receipt.

Removing
--------

Use :func:`remove` and see `the guide <https://example.org>`_.
"""

MARKDOWN = """# Guide

Some *intro* text with a [link](http://x). [![badge](b.svg)](#x)<!-- hidden -->

## Setup

```
# not a heading
pip install thing
```

Setup
paragraph.
"""

HTML = """<html><head><title>t</title><style>p {color: red}</style></head>
<body><div role="navigation"><div>index</div> next <br> previous</div><h1>Policies<a class="headerlink">¶</a></h1>
<p>Refunds are paid
within 14 days.</p>
<script>var x = 1;</script>
<h2>Returns</h2><p>Return items &amp; receipts.</p>
</body></html>
"""


def _read(tmp_path: Path, name: str, text: str) -> list:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    report = DataReport()
    paragraphs = read_document(path, report)
    assert paragraphs is not None, report.problems
    return paragraphs


def test_rst_sections_lines_and_markup(tmp_path: Path) -> None:
    paras = _read(tmp_path, "page.rst.txt", RST)
    got = [(p.heading, p.text, p.words[0][1], p.words[-1][1]) for p in paras]
    assert got == [
        (("Handbook",), "Intro paragraph one spans two lines.", 7, 8),
        (("Handbook", "Installing"), "Run the installer. Then restart.", 13, 14),
        (("Handbook", "Installing"), "Keep the receipt.", 18, 18),
        (("Handbook", "Installing", "Removing"), "Use remove and see the guide.", 23, 23),
    ]


def test_markdown_fences_are_not_headings(tmp_path: Path) -> None:
    paras = _read(tmp_path, "guide.md", MARKDOWN)
    got = [(p.heading, p.text, p.words[0][1]) for p in paras]
    assert got == [
        (("Guide",), "Some intro text with a link. badge", 3),
        (("Guide", "Setup"), "# not a heading pip install thing", 8),
        (("Guide", "Setup"), "Setup paragraph.", 12),
    ]


def test_html_text_without_scripts_and_styles(tmp_path: Path) -> None:
    paras = _read(tmp_path, "p.html", HTML)
    got = [(p.heading, p.text, p.words[0][1], p.words[-1][1]) for p in paras]
    assert got == [
        (("Policies",), "Refunds are paid within 14 days.", 3, 4),
        (("Policies", "Returns"), "Return items & receipts.", 6, 6),
    ]


def test_kinds_and_collect(tmp_path: Path) -> None:
    assert [kind_of(Path(n)) for n in ("a.rst.txt", "b.md", "c.HTML", "d.txt", "e.pdf")] == [
        "rst", "markdown", "html", "text", None,
    ]  # fmt: skip
    (tmp_path / "docs" / ".hidden").mkdir(parents=True)
    for name in ("docs/a.md", "docs/b.txt", "docs/.hidden/c.md", "docs/skip.bin", "x.pdf"):
        (tmp_path / name).write_text("text")
    report = DataReport()
    files = collect([tmp_path / "docs", tmp_path / "docs" / "a.md", tmp_path / "x.pdf", tmp_path / "nope"], report)
    assert [f.name for f in files] == ["a.md", "b.txt"]
    assert [(p.check, Path(p.file).name) for p in report.problems] == [("unknown_kind", "x.pdf"), ("missing", "nope")]


def test_unreadable_and_empty_documents(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("ok\nfa\xe7ade\n".encode("latin-1"))
    (tmp_path / "empty.md").write_text("\n\n   \n")
    report = DataReport()
    assert read_document(tmp_path / "latin.txt", report) is None
    assert read_document(tmp_path / "empty.md", report) is None
    assert [(p.severity, p.check, p.line) for p in report.problems] == [
        ("error", "unreadable", 2),
        ("warning", "empty_document", None),
    ]


def _paras(tmp_path: Path) -> list:
    text = "\n\n".join(
        [
            "alpha beta gamma",  # line 1: 16 characters
            "delta epsilon",  # line 3: 13
            "zeta eta theta iota",  # line 5: 19
            "# Next",  # line 7
            "kappa lambda",  # line 9
        ]
    )
    return _read(tmp_path, "c.md", text)


def test_chunks_whole_paragraphs_within_a_section(tmp_path: Path) -> None:
    chunks = chunk_paragraphs("c.md", _paras(tmp_path), size=40, overlap=0)
    got = [(c.heading, c.text, c.first_line, c.last_line) for c in chunks]
    assert got == [
        ((), "alpha beta gamma\n\ndelta epsilon", 1, 3),  # 16 + 2 + 13 = 31 <= 40; + 2 + 19 would be 52
        ((), "zeta eta theta iota", 5, 5),
        (("Next",), "kappa lambda", 9, 9),  # a heading always starts a new chunk
    ]
    assert chunks[0].where() == "c.md:1-3" and chunks[2].embedded_text == "Next\n\nkappa lambda"


def test_overlap_repeats_the_last_paragraph_that_fits(tmp_path: Path) -> None:
    chunks = chunk_paragraphs("c.md", _paras(tmp_path), size=40, overlap=20)
    assert [(c.text, c.first_line, c.last_line) for c in chunks[:2]] == [
        ("alpha beta gamma\n\ndelta epsilon", 1, 3),
        ("delta epsilon\n\nzeta eta theta iota", 3, 5),  # "delta epsilon" (13 + 2 <= 20) carried over
    ]


def test_long_paragraph_windows_overlap_at_word_boundaries(tmp_path: Path) -> None:
    words = " ".join(f"w{i:02d}" for i in range(20))  # 20 words of 3 characters: 79 characters
    text = "\n".join(" ".join(f"w{i:02d}" for i in range(j, j + 5)) for j in range(0, 20, 5))  # 4 lines of 5 words
    chunks = chunk_paragraphs("l.txt", _read(tmp_path, "l.txt", text), size=30, overlap=8)
    assert chunks[0].text == words[:27]  # w00..w06 is 27 characters; with w07 it would be 31
    assert [c.text.split()[0] for c in chunks] == ["w00", "w05", "w10", "w15"]  # each repeats 2 words (8 characters)
    assert [(c.first_line, c.last_line) for c in chunks] == [(1, 2), (2, 3), (3, 4), (4, 4)]
    assert all(len(c.text) <= 30 for c in chunks)


def test_bad_chunk_settings() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_paragraphs("x", [], size=10, overlap=10)
