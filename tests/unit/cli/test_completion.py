"""`tunesmith --version` and the shell completion scripts, run by bash itself."""

from __future__ import annotations

import subprocess
from importlib import metadata

import pytest

from tunesmith.cli import _parser, main
from tunesmith.cli.completion import script


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"tunesmith {metadata.version('tunesmith')}"


def _complete(words: list[str], tmp_path) -> list[str]:
    path = tmp_path / "c.bash"
    path.write_text(script(_parser(), "bash"))
    quoted = " ".join(f"'{w}'" for w in words)
    show = 'printf "%s\\n" "${COMPREPLY[@]}"'
    probe = f"source {path}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _tunesmith; {show}"
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_choices(tmp_path):
    assert _complete(["tunesmith", "ex"], tmp_path) == ["export"]
    assert set(_complete(["tunesmith", ""], tmp_path)) >= {"train", "serve", "label-next", "completion", "--version"}
    assert _complete(["tunesmith", "export", "runs/x", "--gg"], tmp_path) == ["--gguf"]
    assert _complete(["tunesmith", "serve", "r", "--backend", ""], tmp_path) == ["auto", "torch", "onnx"]
    assert {"promote", "register"} <= set(_complete(["tunesmith", "models", ""], tmp_path))
    (tmp_path / "config.yaml").write_text("x: 1")
    assert "config.yaml" in _complete(["tunesmith", "train", "con"], tmp_path)


def test_zsh_script_loads_the_bash_one_through_bashcompinit(capsys):
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef tunesmith\nautoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -o filenames -F _tunesmith tunesmith" in out
