"""What a registered version keeps: the run directory's files and the data it was trained and checked on."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import InputError

SKIP_DIRS = {"checkpoints", "__pycache__"}
LISTING_SUFFIXES = {".csv", ".jsonl", ".parquet"}


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


def data_files(path: Path, task: str, path_column: str, split: str) -> list[tuple[Path, str]]:
    """(file, path in the version) for one data split: a file, a folder's files, an IDX pair, or an image listing
    with the images it names (paths relative to the listing, as training read them)."""
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
    elif task == "image-classification" and path.suffix.lower() in LISTING_SUFFIXES:
        from tunesmith.data.readers import read_table

        base = path.parent.resolve()
        for row in read_table(path).rows:
            rel = str(row.get(path_column) or "")
            target = (base / rel).resolve()
            if rel and target.is_file() and target.is_relative_to(base):
                files.append((target, prefix + target.relative_to(base).as_posix()))
    return files
