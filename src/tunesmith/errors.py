"""Errors a user can act on. Each maps to a CLI exit code (2 for bad input, 1 otherwise)."""

from __future__ import annotations

from dataclasses import dataclass


class TunesmithError(Exception):
    """Base class for errors tunesmith raises on purpose."""

    exit_code = 1


class ConfigError(TunesmithError):
    """A config key is unknown or holds a value that is not allowed."""

    exit_code = 2


class InputError(TunesmithError):
    """A file, path or argument given by the user cannot be used."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One finding about the data: where it is, and what is wrong."""

    severity: str  # "error" (fatal) or "warning"
    check: str  # short machine name, e.g. "missing_label"
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def where(self) -> str:
        parts = [p for p in (self.file, f"line {self.line}" if self.line is not None else None) if p]
        loc = ":".join(parts) if parts else "data"
        return f"{loc}" + (f" [{self.field}]" if self.field else "")

    def __str__(self) -> str:
        return f"{self.severity}: {self.where()}: {self.message}"


class DataError(TunesmithError):
    """The data has fatal problems; every problem found is listed, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        head = f"{len(errors)} fatal data problem(s); nothing was written"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in errors))


class TrainingDiverged(TunesmithError):
    """The loss became NaN or infinite; no bad step was applied."""

    exit_code = 1
