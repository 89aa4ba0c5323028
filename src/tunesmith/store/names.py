"""Model names, aliases and references (``name``, ``name@v3``, ``name@prod``): validated before any path is made."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunesmith.errors import InputError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")
NAME_RULE = "1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
ALIAS_RULE = "1-32 characters of a-z, 0-9, '_', '-', starting with a letter, and not v<number>"


def check_name(name: str) -> str:
    """A model name that is safe as one folder name: no separators, no '..', nothing hidden."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InputError(f"model name {name!r} is not allowed: use {NAME_RULE}")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias) or VERSION_RE.match(alias):
        raise InputError(f"alias {alias!r} is not allowed: use {ALIAS_RULE}")
    return alias


@dataclass(frozen=True)
class Ref:
    """A reference to a registered model: a version number, an alias, or neither (the newest version)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(text: str) -> Ref:
    """``name``, ``name@v3`` or ``name@prod``; anything else is refused with the rule it broke."""
    name, sep, tag = str(text).partition("@")
    check_name(name)
    if not sep:
        return Ref(name)
    m = VERSION_RE.match(tag)
    if m:
        return Ref(name, version=int(m.group(1)))
    return Ref(name, alias=check_alias(tag))
