"""Chunks by structure: whole paragraphs of one section up to ``size`` characters, never across a heading.

A new chunk of the same section starts with the previous chunk's last paragraphs that fit in ``overlap``
characters, so an answer split between two chunks is whole in one of them. A paragraph longer than ``size`` is cut
at word boundaries into windows of ``size`` characters that overlap by ``overlap``. Every chunk keeps its heading
path and the exact first and last line of the words it holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tunesmith.knowledge.documents import Paragraph, Word


@dataclass(frozen=True)
class Chunk:
    source: str
    heading: tuple[str, ...]
    text: str
    first_line: int
    last_line: int

    @property
    def title(self) -> str:
        return " > ".join(self.heading)

    @property
    def embedded_text(self) -> str:
        """What the encoder reads: the heading path, then the text (a heading often names what a chunk is about)."""
        return f"{self.title}\n\n{self.text}" if self.heading else self.text

    @property
    def digest(self) -> str:
        return hashlib.sha256(" ".join(self.text.split()).casefold().encode("utf-8")).hexdigest()

    def where(self) -> str:
        return line_range(self.source, self.first_line, self.last_line)


def line_range(source: str, first: int, last: int) -> str:
    """``file:line`` or ``file:first-last``: how a chunk's place is written everywhere."""
    return f"{source}:{first}" if first == last else f"{source}:{first}-{last}"


def text_length(words: list[Word]) -> int:
    """Characters of the words joined by single spaces."""
    return sum(len(w) for w, _ in words) + max(0, len(words) - 1)


def _windows(words: list[Word], size: int, overlap: int) -> list[list[Word]]:
    """A long paragraph in windows of at most ``size`` characters (a single longer word is its own window)."""
    out: list[list[Word]] = []
    start = 0
    while start < len(words):
        end, used = start, -1
        while end < len(words) and (end == start or used + 1 + len(words[end][0]) <= size):
            used += 1 + len(words[end][0])
            end += 1
        out.append(words[start:end])
        if end >= len(words):
            break
        back, kept = end, 0  # step back over at most ``overlap`` characters, always moving forward
        while back - 1 > start and kept + len(words[back - 1][0]) + 1 <= overlap:
            back -= 1
            kept += len(words[back][0]) + 1
        start = back
    return out


def chunk_paragraphs(source: str, paragraphs: list[Paragraph], size: int, overlap: int) -> list[Chunk]:
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"chunk size {size} and overlap {overlap}: need size >= 1 and 0 <= overlap < size")
    out: list[Chunk] = []
    current: list[list[Word]] = []  # the paragraphs of the chunk being filled
    heading: tuple[str, ...] | None = None

    def emit() -> None:
        if current:
            words = [w for para in current for w in para]
            text = "\n\n".join(" ".join(w for w, _ in para) for para in current)
            out.append(Chunk(source, heading or (), text, words[0][1], words[-1][1]))

    def carried() -> list[list[Word]]:
        kept: list[list[Word]] = []
        total = 0
        for para in reversed(current):
            total += text_length(para) + 2
            if total > overlap:
                break
            kept.insert(0, para)
        return kept

    for p in paragraphs:
        pieces = _windows(p.words, size, overlap) if text_length(p.words) > size else [p.words]
        for piece in pieces:
            if p.heading != heading:
                emit()
                current, heading = [], p.heading
            elif current and sum(text_length(c) + 2 for c in current) + text_length(piece) > size:
                emit()
                current = carried() if len(pieces) == 1 else []
                while current and sum(text_length(c) + 2 for c in current) + text_length(piece) > size:
                    current.pop(0)
            current.append(piece)
    emit()
    return out
