"""What a registered version keeps: the run directory's files and the data it was trained and checked on."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import InputError

SKIP_DIRS = {"checkpoints", "__pycache__"}


def run_files(run: Path) -> list[tuple[Path, str]]:
    """(file, path in the version) for every file of a finished run, checkpoints and temporary files left out.
    Links are refused: a version holds bytes, not pointers to somewhere else."""
    out = []
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run)
        if any(part in SKIP_DIRS for part in rel.parts) or p.name.endswith(".tmp") or p.is_dir():
            continue
        if p.is_symlink():
            raise InputError(f"{p}: a link; a registered run must hold plain files")
        out.append((p, "run/" + rel.as_posix()))
    return out


def data_files(path: Path, split: str, named: list[Path]) -> list[tuple[Path, str]]:
    """(file, path in the version) for one data split: a file, a folder's files, an IDX pair, plus the files the
    task says the path names (an image listing's images: ``named``, paths relative to the listing's folder)."""
    from tunesmith.data.images import idx_labels_path

    prefix = f"data/{split}/"
    if path.is_dir():
        return [
            (p, prefix + path.name + "/" + p.relative_to(path).as_posix())
            for p in sorted(path.rglob("*"))
            if p.is_file() and not p.is_symlink()
        ]
    files = [(path, prefix + path.name)]
    if "idx3" in path.name and idx_labels_path(path).is_file():
        files.append((idx_labels_path(path), prefix + idx_labels_path(path).name))
    base = path.parent.resolve()
    files += [(target, prefix + target.relative_to(base).as_posix()) for target in named]
    return files
