"""The search space, written where the values go: ``train.learning_rate: loguniform(1e-5, 1e-3)``.

Distributions: ``loguniform(low, high)``, ``uniform(low, high)``, ``int(low, high[, step])``,
``logint(low, high)``, ``choice(a, b, ...)``. Any config key may take one; the rest of the file is a normal
config. Every error names the file, the line, the key and what is allowed, and nothing runs before the whole
space checks out: each dimension's bounds are validated as config values too.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunesmith import config as cfgmod
from tunesmith.errors import ConfigError
from tunesmith.files import read_yaml

DISTRIBUTIONS = {
    "loguniform": "loguniform(low, high): a float, log scale, 0 < low < high",
    "uniform": "uniform(low, high): a float, low < high",
    "int": "int(low, high[, step]): an integer from low to high inclusive",
    "logint": "logint(low, high): an integer, log scale, 0 < low < high",
    "choice": "choice(a, b, ...): one of the listed values",
}
_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Dimension:
    key: str  # config path, e.g. train.learning_rate
    kind: str
    args: tuple[Any, ...]
    where: str  # file:line

    def suggest(self, trial: Any) -> Any:
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.args[0], self.args[1], log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.args[0], self.args[1])
        if self.kind == "int":
            step = self.args[2] if len(self.args) > 2 else 1
            return trial.suggest_int(self.key, self.args[0], self.args[1], step=step)
        if self.kind == "logint":
            return trial.suggest_int(self.key, self.args[0], self.args[1], log=True)
        if self.encoded:  # Optuna stores scalars only: lists ([256]) travel as their YAML text and come back
            return yaml.safe_load(trial.suggest_categorical(self.key, [_flow(a) for a in self.args]))
        return trial.suggest_categorical(self.key, list(self.args))

    @property
    def encoded(self) -> bool:
        return self.kind == "choice" and any(isinstance(a, (list, dict)) for a in self.args)

    def corners(self) -> list[Any]:
        """Values at the ends of the range (all of a choice): each must be a valid config value."""
        if self.kind == "choice":
            return list(self.args)
        return [self.args[0], self.args[1]]

    def describe(self) -> str:
        return f"{self.kind}({', '.join(map(str, self.args))})"


@dataclass
class SearchSpace:
    base: dict[str, Any]  # the config with every dimension taken out
    dimensions: list[Dimension]

    def config_for(self, values: dict[str, Any]) -> dict[str, Any]:
        """The config of one point; values may be as Optuna stored them (a list choice as its YAML text)."""
        raw = copy.deepcopy(self.base)
        encoded = {d.key for d in self.dimensions if d.encoded}
        for key, value in values.items():
            cfgmod.set_key(raw, key, yaml.safe_load(value) if key in encoded and isinstance(value, str) else value)
        return raw


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip()


def _number(text: str, where: str, key: str, expr: str) -> float | int:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(text)  # YAML reads 1e-5 (no dot) as a string
        except ValueError:
            raise ConfigError(f"{where}: {key}: {expr}: {text.strip()!r} is not a number") from None
    return value


def _split_args(text: str) -> list[str]:
    """Arguments split at top-level commas: ``[128, 64]`` stays one value."""
    if not text.strip():
        return []
    args, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    return [*args, text[start:].strip()]


def parse_expression(expr: str, key: str, where: str) -> Dimension:
    """One distribution expression; raises ConfigError naming what is wrong and what is allowed."""
    m = _CALL.match(expr)
    if m is None:
        raise ConfigError(f"{where}: {key}: {expr!r} is not a distribution; allowed: {', '.join(DISTRIBUTIONS)}")
    name, inner = m.group(1), m.group(2)
    if name not in DISTRIBUTIONS:
        close = difflib.get_close_matches(name, list(DISTRIBUTIONS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{where}: {key}: unknown distribution {name!r}{hint}; allowed: {', '.join(DISTRIBUTIONS)}")
    if "(" in inner or ")" in inner:
        raise ConfigError(f"{where}: {key}: {expr}: unbalanced or nested parentheses; {DISTRIBUTIONS[name]}")
    args = _split_args(inner)
    usage = DISTRIBUTIONS[name]
    if name == "choice":
        if len(args) < 2 or any(a == "" for a in args):
            raise ConfigError(f"{where}: {key}: {expr}: a choice needs two or more values; {usage}")
        values = tuple(yaml.safe_load(a) for a in args)
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{where}: {key}: {expr}: a value is listed twice")
        return Dimension(key, name, values, where)
    want = (2, 3) if name == "int" else (2,)
    if len(args) not in want:
        raise ConfigError(f"{where}: {key}: {expr}: expected {' or '.join(map(str, want))} arguments; {usage}")
    nums = [_number(a, where, key, expr) for a in args]
    low, high = nums[0], nums[1]
    if name in ("int", "logint"):
        if any(not float(v).is_integer() for v in nums):
            raise ConfigError(f"{where}: {key}: {expr}: the bounds must be whole numbers; {usage}")
        nums = [int(v) for v in nums]
        low, high = nums[0], nums[1]
        if len(nums) == 3 and nums[2] < 1:
            raise ConfigError(f"{where}: {key}: {expr}: step must be 1 or more")
    else:
        nums = [float(v) for v in nums]
        low, high = nums
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"{where}: {key}: {expr}: low must be below high; {usage}")
    if name in ("loguniform", "logint") and low <= 0:
        raise ConfigError(f"{where}: {key}: {expr}: a log scale needs low > 0; {usage}")
    return Dimension(key, name, tuple(nums), where)


def _walk(node: yaml.Node, path: str, out: list[tuple[str, str, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _walk(v, f"{path}.{k.value}" if path else str(k.value), out)
    elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and _CALL.match(node.value or ""):
        out.append((path, node.value, node.start_mark.line + 1))


def _string_key(key: str) -> bool:
    """Keys whose values are free text (file names, columns): a call-like value there is a value, not a
    distribution, unless it names one."""
    import dataclasses
    import typing

    section, _, name = key.rpartition(".")
    cls = cfgmod._SECTIONS.get(section) if section else cfgmod.Config
    if cls is None:
        return False
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        return False
    hint = typing.get_type_hints(cls)[name]
    return hint is str or hint == (str | None)


def parse_file(path: str | Path) -> SearchSpace:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        raw = read_yaml(text)
        root = yaml.compose(text)
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    found: list[tuple[str, str, int]] = []
    if root is not None:
        _walk(root, "", found)
    return parse_mapping(raw, found, str(p))


def parse_mapping(raw: dict[str, Any], found: list[tuple[str, str, int]], source: str) -> SearchSpace:
    dimensions = []
    base = copy.deepcopy(raw)
    for key, expr, line in found:
        where = f"{source}:{line}"
        m = _CALL.match(expr)
        if m and m.group(1) not in DISTRIBUTIONS and _string_key(key):
            continue  # e.g. data.train: "reviews(2024).csv" stays a file name
        dimensions.append(parse_expression(expr, key, where))
        node = base
        *sections, last = key.split(".")
        for part in sections:
            node = node[part]
        del node[last]
    if not dimensions:
        raise ConfigError(
            f"{source}: no search space: give at least one key a distribution, e.g. "
            "train.learning_rate: loguniform(1e-5, 1e-3)"
        )
    space = SearchSpace(base, dimensions)
    for dim in dimensions:  # every end of every range must be a valid value of its key
        for value in dim.corners():
            try:
                cfgmod.from_dict(space.config_for({dim.key: value}))
            except ConfigError as exc:
                raise ConfigError(f"{dim.where}: {dim.key}: {dim.describe()}: {exc}") from None
    return space
