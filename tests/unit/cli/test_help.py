"""Help a person can act on: every positional and option is described, every command ends with examples,
misspelled commands get the closest one, and tables line up whatever the lengths of their cells."""

from __future__ import annotations

import argparse

import pytest

from tunesmith.cli import _parser, main
from tunesmith.cli.table import table


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        found.append((path, p))
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, f"{path} {name}")

    walk(_parser(), "tunesmith")
    return found


def test_every_argument_is_described():
    missing = [
        f"{path} {a.option_strings or a.dest}"
        for path, p in _parsers()
        for a in p._actions
        if not a.help and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
    ]
    assert not missing


def test_every_command_ends_with_examples():
    top = [(path, p) for path, p in _parsers() if path.count(" ") == 1]
    assert len(top) >= 12
    for path, p in top:
        assert p.epilog and p.epilog.startswith("examples:"), path
        assert path.split()[1] in p.format_help().split("examples:")[1], f"{path}: the examples use the command"


@pytest.mark.parametrize(("argv", "close"), [(["trian"], "train"), (["sevre"], "serve"), (["models", "lsit"], "list")])
def test_a_misspelled_command_gets_the_closest(argv, close, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"did you mean {close!r}?" in capsys.readouterr().err


def test_tables_line_up_and_wrap_the_last_column(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    rows = [["a", "1", "short"], ["a much longer name", "12345", "a description long enough to need two lines " * 2]]
    out = table(["name", "n", "meaning"], rows, right=[1]).splitlines()
    start = out[0].index("meaning")
    assert all(line[start - 2 : start] == "  " for line in out if len(line) > start)
    assert out[1].index("short") == start == out[2].index("a description")
    col = len("a much longer name") + 2
    assert (out[1][col : col + 5], out[2][col : col + 5]) == ("    1", "12345"), "numbers right-aligned"
    assert len(out) > 3 and all(len(line) <= 60 for line in out), "the last column wraps under itself"
    assert out[3].startswith(" " * start) and out[3].strip()
