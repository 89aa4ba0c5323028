"""Documents as sections of paragraphs whose every word knows its line: text, Markdown, reStructuredText, HTML.

A reader returns ``Paragraph``s: the heading path above it (``("Library", "Installing")``) and its words with
their 1-based line numbers, so a chunk cut anywhere can name the exact line range it came from. Markup that a
reader of the text would not see (reStructuredText roles and directives, Markdown emphasis, HTML tags, scripts and
styles) is dropped; code blocks are kept as text."""

from __future__ import annotations

import html
import html.parser
import re
from dataclasses import dataclass
from pathlib import Path

from tunesmith.data.validate import DataReport

Word = tuple[str, int]  # (word, line)
KINDS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".rst": "rst"}
KINDS |= {".html": "html", ".htm": "html"}


@dataclass(frozen=True)
class Paragraph:
    heading: tuple[str, ...]
    words: list[Word]

    @property
    def text(self) -> str:
        return " ".join(w for w, _ in self.words)


def kind_of(path: Path) -> str | None:
    """The reader a file name asks for; Sphinx's ``page.rst.txt`` sources are reStructuredText."""
    name = path.name.lower()
    if name.endswith(".rst.txt"):
        return "rst"
    return KINDS.get(path.suffix.lower())


def collect(paths: list[str | Path], report: DataReport) -> list[Path]:
    """The files the given paths stand for (folders walked, hidden entries skipped), each once, in a stable order.
    A missing path or a named file of a kind no reader knows is an error."""
    out: dict[Path, None] = {}
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if f.is_file() and kind_of(f) and not any(part.startswith(".") for part in rel):
                    out[f] = None
        elif p.is_file():
            if kind_of(p) is None:
                kinds = ", ".join(sorted({*KINDS, ".rst.txt"}))
                report.add("error", "unknown_kind", f"not a document kind tunesmith reads ({kinds})", str(p))
            else:
                out[p] = None
        else:
            report.add("error", "missing", "no such file or folder", str(p))
    return list(out)


def read_document(path: Path, report: DataReport) -> list[Paragraph] | None:
    """The file's paragraphs; None (and a problem naming the file) when it cannot be read or holds no text."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        report.add("error", "unreadable", f"cannot be read: {e.strerror or e}", str(path))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        report.add("error", "unreadable", f"not UTF-8 text (byte {e.start}); save it as UTF-8", str(path), line)
        return None
    kind = kind_of(path)
    lines = text.splitlines()
    paragraphs = {
        "rst": _rst,
        "markdown": _markdown,
        "html": lambda ls: _html(text),
        "text": lambda ls: _plain(ls, 1, ()),
    }[kind or "text"](lines)
    if not any(p.words for p in paragraphs):
        report.add("warning", "empty_document", "holds no text; skipped", str(path))
        return None
    return [p for p in paragraphs if p.words]


# --- plain paragraphs ---------------------------------------------------------------------------------------------
def _words(line: str, number: int) -> list[Word]:
    return [(w, number) for w in line.split()]


def _plain(lines: list[str], first: int, heading: tuple[str, ...], clean=lambda s: s) -> list[Paragraph]:
    """Blank-line separated paragraphs of ``lines`` (the first is line ``first``)."""
    out: list[Paragraph] = []
    words: list[Word] = []
    for i, line in enumerate(lines):
        if line.strip():
            words += _words(clean(line), first + i)
        elif words:
            out.append(Paragraph(heading, words))
            words = []
    if words:
        out.append(Paragraph(heading, words))
    return out


def _sections(lines: list[str], heads: dict[int, tuple[int, int, str]], clean=lambda s: s) -> list[Paragraph]:
    """Paragraphs under their heading path; ``heads``: first line index -> (level, lines the heading spans, title)."""
    out: list[Paragraph] = []
    path: list[tuple[int, str]] = []
    start, i = 0, 0
    while i <= len(lines):
        if i == len(lines) or i in heads:
            out += _plain(lines[start:i], start + 1, tuple(t for _, t in path), clean)
            if i == len(lines):
                break
            level, span, title = heads[i]
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
            i += span
            start = i
            continue
        i += 1
    return out


# --- reStructuredText ---------------------------------------------------------------------------------------------
_ADORN = re.compile(r"^([=\-~^*#+\"'`:.])\1{2,}\s*$")
_ROLE = re.compile(r":[a-z:]+:`(?:[^`<]*<)?([^`>]*)>?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")
_FIELD = re.compile(r"^:[\w-]+:(\s.*)?$")  # a field list line at the margin (page metadata such as :tocdepth: 2)


def plain_rst(text: str) -> str:
    """reStructuredText as readable prose: roles reduced to their text, links to their words, markup dropped."""
    out = _LINK.sub(r"\1", _ROLE.sub(r"\1", text))
    return out.replace("``", "").replace("**", "").replace("::", ":")


def _rst(lines: list[str]) -> list[Paragraph]:
    heads: dict[int, tuple[int, int, str]] = {}
    styles: list[tuple[str, bool]] = []  # adornment styles in the order they appear: that order is the level
    i = 0
    while i < len(lines) - 1:
        over = bool(_ADORN.match(lines[i])) and i + 2 < len(lines) and bool(_ADORN.match(lines[i + 2]))
        title_at = i + 1 if over else i
        under = lines[title_at + 1] if title_at + 1 < len(lines) else ""
        title = lines[title_at].strip()
        underlined = bool(_ADORN.match(under)) and len(under.strip()) >= 3 and not _ADORN.match(lines[title_at])
        if title and underlined and (over or not lines[title_at].startswith(" ")):
            style = (under.strip()[0], over)
            if style not in styles:
                styles.append(style)
            heads[i] = (styles.index(style), (3 if over else 2), plain_rst(title))
            i += 3 if over else 2
            continue
        i += 1
    kept = [
        ("" if line.strip().startswith(".. ") or _ADORN.match(line) or _FIELD.match(line) else line) for line in lines
    ]
    return _sections(kept, heads, plain_rst)


# --- Markdown -----------------------------------------------------------------------------------------------------
_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_MARKS = re.compile(r"(\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`)")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_COMMENT = re.compile(r"<!--.*?-->")


def _md_clean(line: str) -> str:
    line = _MD_LINK.sub(r"\1", _MD_LINK.sub(r"\1", _MD_COMMENT.sub("", line)))  # twice: a badge is an image in a link
    return _MD_MARKS.sub("", line)


def _markdown(lines: list[str]) -> list[Paragraph]:
    heads: dict[int, tuple[int, int, str]] = {}
    fenced = False
    kept = list(lines)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            kept[i] = ""
            continue
        if fenced:
            continue
        m = _ATX.match(line)
        if m:
            heads[i] = (len(m.group(1)), 1, _md_clean(m.group(2)))
        elif (
            i + 1 < len(lines)
            and line.strip()
            and re.fullmatch(r"\s*(=+|-+)\s*", lines[i + 1])
            and (i == 0 or not lines[i - 1].strip())
        ):
            heads[i] = (1 if "=" in lines[i + 1] else 2, 2, _md_clean(line.strip()))
    return _sections(kept, heads, _md_clean)


# --- HTML ---------------------------------------------------------------------------------------------------------
_BLOCKS = {"p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption", "div", "section"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "source", "area", "col", "embed", "track", "base"}
_SKIP = {"script", "style", "nav", "head", "noscript", "template", "header", "footer", "aside"}
_SKIP_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary"}
_SKIP_CLASSES = {"headerlink", "sphinxsidebar", "related", "footer", "breadcrumbs"}  # site chrome, not content


class _HTMLText(html.parser.HTMLParser):
    """Text of the page's content: site chrome (scripts, styles, navigation, headers, footers, sidebars, Sphinx's
    heading links) is skipped whole, nested elements of the same name included."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[Paragraph] = []
        self.path: list[tuple[int, str]] = []
        self.words: list[Word] = []
        self.heading: tuple[int, list[str]] | None = None
        self.skip_tag: str | None = None  # the element a skipped region started with, and how deep in it we are
        self.skip_depth = 0

    def _flush(self) -> None:
        if self.words:
            self.paragraphs.append(Paragraph(tuple(t for _, t in self.path), self.words))
            self.words = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _VOID:
            if tag == "br":
                self._flush()
            return
        if self.skip_tag is not None:
            self.skip_depth += tag == self.skip_tag
            return
        a = dict(attrs)
        if tag in _SKIP or a.get("role") in _SKIP_ROLES or _SKIP_CLASSES & set((a.get("class") or "").split()):
            self.skip_tag, self.skip_depth = tag, 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = (int(tag[1]), [])
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        if re.fullmatch(r"h[1-6]", tag) and self.heading is not None:
            level, parts = self.heading
            title = " ".join(" ".join(parts).split())
            self.path = [(lv, t) for lv, t in self.path if lv < level] + ([(level, title)] if title else [])
            self.heading = None
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skip_tag is not None:
            return
        if self.heading is not None:
            self.heading[1].append(data)
            return
        line = self.getpos()[0]
        for k, piece in enumerate(data.split("\n")):
            self.words += _words(piece, line + k)


def _html(text: str) -> list[Paragraph]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser._flush()
    return [Paragraph(p.heading, [(html.unescape(w), n) for w, n in p.words]) for p in parser.paragraphs]
