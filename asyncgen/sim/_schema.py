"""A JSON value that fits a JSON schema, for the simulator's structured answers.

A request with ``response_format: {"type": "json_schema", "json_schema": {"schema": S}}``
is answered with an object that fits S (when the model's profile sets no reply), so
structured outputs work against the simulator without configuring replies. The value is
deterministic: the required properties (and, near the top, the optional ones too), the
first enum value or ``const``, numbers inside their bounds, strings within their lengths
(or "example"), arrays of their minimum length (near the top, one item at least), the
first branch of ``anyOf``/``oneOf`` that is not null (deeper down, null where allowed),
``$ref`` to ``$defs``/``definitions`` followed. So a recursive schema (a tree) ends.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["example", "schema_of"]

SHALLOW = 3  # below this depth: only what is required, empty lists, null where allowed
MAX_DEPTH = 64  # a schema that requires its own recursion gets null past this depth


def schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a chat request asks its answer to fit, or None."""
    wanted = request.get("response_format")
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return None
    spec = wanted.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def example(schema: dict[str, Any]) -> Any:
    """A value that fits ``schema`` (see the module docstring)."""
    return _value(schema, schema, 0)


def _value(node: Any, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in node:
        return _value(_resolve(str(node["$ref"]), root), root, depth + 1)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches:
            usable = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            if depth >= SHALLOW and len(usable) < len(branches):
                return None
            return _value((usable or branches)[0], root, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _typed(str(kind) if kind else _guess(node), node, root, depth)


def _typed(kind: str, node: dict[str, Any], root: dict[str, Any], depth: int) -> Any:
    if kind == "object":
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = set(node.get("required") or ())
        return {
            name: _value(sub, root, depth + 1)
            for name, sub in properties.items()
            if name in required or depth < SHALLOW
        }
    if kind == "array":
        count = int(node.get("minItems", 0))
        items = node.get("items")
        if not isinstance(items, dict):
            return []
        least = 1 if depth < SHALLOW else 0
        return [_value(items, root, depth + 1) for _ in range(max(count, least))]
    if kind in ("integer", "number"):
        return _number(node, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "string":
        return _string(node)
    return None


def _number(node: dict[str, Any], *, integer: bool) -> int | float:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, int | float):
        value = low + (1 if "exclusiveMinimum" in node and "minimum" not in node else 0)
    if isinstance(high, int | float) and value > high:
        value = high - (1 if "exclusiveMaximum" in node and "maximum" not in node else 0)
    return math.ceil(value) if integer else float(value)


def _string(node: dict[str, Any]) -> str:
    formats = {
        "date-time": "2026-01-01T00:00:00Z",
        "date": "2026-01-01",
        "time": "00:00:00",
        "email": "ada@example.com",
        "uri": "https://example.com/",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    text = formats.get(str(node.get("format")), "example")
    least = int(node.get("minLength", 0))
    most = node.get("maxLength")
    if len(text) < least:
        text = text + "x" * (least - len(text))
    if isinstance(most, int) and len(text) > most:
        text = text[:most]
    return text


def _guess(node: dict[str, Any]) -> str:
    if "properties" in node:
        return "object"
    if "items" in node:
        return "array"
    return "null"


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    """``#/$defs/Name`` (or ``#/definitions/Name``) in the root schema."""
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        node = (
            node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        )
    return node
