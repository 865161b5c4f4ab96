"""Read YAML/JSON data files safely and turn validation failures into `Problem`s.

Every kind of file (knowledge, rules, answers) goes through here, so every bad
file is reported the same way: the file, the entry, the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import DataFileError, Problem
from engine.model import parse_cache

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32

M = TypeVar("M", bound=BaseModel)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors/aliases (the cause of 'billion laughs' bombs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                "while reading the file",
                None,
                "YAML aliases (*name) are not allowed here; write the value out in full",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _has_alias(node: yaml.Node) -> bool:
    """Whether a composed document reaches one node twice: that is what an alias (*name) does."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            return True
        seen.add(id(item))
        if isinstance(item, yaml.MappingNode):
            stack.extend(part for pair in item.value for part in pair)
        elif isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
    return False


def _load_yaml(text: str) -> Any:
    """Parse YAML safely, with libyaml when PyYAML has it (several times faster: start-up time).

    Only a document that libyaml reads without error and without aliases is taken from it;
    anything else is read again by `_NoAliasLoader`, which gives the errors in its own words.
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        loader = fast(text)
        try:
            node = loader.get_single_node()
            if node is not None and not _has_alias(node):
                return loader.construct_document(node)
        except yaml.YAMLError:
            pass  # reported below, by the same loader as always
        finally:
            loader.dispose()
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_text(text: str, name: str, error: type[DataFileError] = DataFileError) -> Any:
    """Parse YAML or JSON text (JSON is valid YAML, but is parsed as JSON when it looks like it)."""
    stripped = text.lstrip()
    if not stripped:
        raise error(Problem(name, "", "", "the file is empty; expected a mapping of fields"))
    try:
        if stripped[0] in "{[":
            data = json.loads(text)
        else:
            data = _load_yaml(text)
    except json.JSONDecodeError as exc:
        raise error(Problem(name, "", "", f"not valid JSON: {exc.msg} at line {exc.lineno}")) from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(Problem(name, "", "", f"not valid YAML: {detail}")) from exc
    except RecursionError as exc:
        raise error(Problem(name, "", "", f"nested too deeply (limit {MAX_DEPTH} levels)")) from exc
    except ValueError as exc:  # a number of over 4,300 digits, a date such as 2024-13-45
        detail = "a number has too many digits" if "integer string conversion" in str(exc) else str(exc)
        raise error(Problem(name, "", "", f"a value cannot be read: {detail}")) from exc
    if _depth(data) > MAX_DEPTH:
        raise error(Problem(name, "", "", f"nested too deeply (limit {MAX_DEPTH} levels)"))
    return data


def read_data(path: Path, error: type[DataFileError] = DataFileError) -> Any:
    """Read one YAML or JSON file, refusing binary, oversized, empty or bomb-like content."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(Problem(name, "", "", f"cannot read the file: {exc.strerror}")) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise error(Problem(name, "", "", f"the file is larger than {MAX_FILE_BYTES} bytes"))
    if b"\x00" in raw:
        raise error(Problem(name, "", "", "this is a binary file; expected YAML or JSON text"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(Problem(name, "", "", "the file is not UTF-8 text; expected YAML or JSON")) from exc
    cache = parse_cache.ACTIVE.get()
    if cache is None:
        return parse_text(text, name, error)
    data = cache.get(raw)
    if data is parse_cache.MISSING:
        data = parse_text(text, name, error)
        cache.put(raw, data)
    return data


def _entry_label(data: Any, loc: tuple[Any, ...], entry_key: str) -> tuple[str, int]:
    """Name the entry a location points into (e.g. 'rule ESI-01'); return it and how much of loc it used."""
    node = data
    label = ""
    used = 0
    if isinstance(data, dict) and isinstance(data.get(entry_key), str):
        label = f"{entry_key} {data[entry_key]}" if entry_key != "id" else data[entry_key]
    for i, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        if isinstance(node, dict) and isinstance(node.get(entry_key), str):
            label = f"{entry_key} {node[entry_key]}" if entry_key != "id" else node[entry_key]
            used = i + 1
    return label, used


def _hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Find an example for the field a location points to, from the model's field metadata."""
    current: Any = model
    field_info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        field_info = fields[part]
        annotation = field_info.annotation
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            break
    if field_info is not None and field_info.examples:
        return f"; for example `{field_info.examples[0]}`"
    if field_info is not None and field_info.description:
        return f" ({field_info.description})"
    return ""


def problems_from(
    exc: ValidationError, name: str, data: Any, model: type[BaseModel], entry_key: str = "id", kind: str = ""
) -> list[Problem]:
    """Turn a pydantic ValidationError into one Problem per error, naming entry and field."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        label, used = _entry_label(data, loc, entry_key)
        if label and kind:
            label = f"{kind} {label}"
        field = ".".join(str(p) for p in loc[used:]) or ".".join(str(p) for p in loc)
        got = err.get("input")
        message = err["msg"]
        if err["type"] == "answer":
            problems.append(Problem(name, label, field, message))
            continue
        if err["type"] == "missing":
            message = "this field is required"
        elif err["type"] == "extra_forbidden":
            message = "unknown field; check the spelling or remove it"
        elif not isinstance(got, dict | list):
            text = repr(got)
            message += f"; got {text if len(text) <= 60 else text[:57] + '...'}"
        problems.append(Problem(name, label, field, message + _hint(model, loc)))
    return problems


def validate(
    model: type[M],
    data: Any,
    name: str,
    error: type[DataFileError] = DataFileError,
    entry_key: str = "id",
    kind: str = "",
) -> M:
    """Validate parsed data against one model, raising `error` with every problem found."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(problems_from(exc, name, data, model, entry_key, kind)) from exc


def load_file(
    model: type[M], path: Path, error: type[DataFileError] = DataFileError, entry_key: str = "id", kind: str = ""
) -> M:
    """Read and validate one data file."""
    return validate(model, read_data(path, error), str(path), error, entry_key, kind)
