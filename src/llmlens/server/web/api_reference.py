"""The API reference page's content, read from the app's OpenAPI document (served locally: no CDN)."""

from __future__ import annotations

from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")


def reference(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by their first tag, in the document's order: [{tag, operations: [...]}]."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            groups.setdefault((op.get("tags") or ["other"])[0], []).append({
                "method": method.upper(),
                "path": path,
                "anchor": "-".join([method, *(part.strip("{}") for part in path.split("/") if part)]),
                "summary": op.get("summary") or "",
                "description": (op.get("description") or "").strip(),
                "parameters": [_parameter(p) for p in op.get("parameters", [])],
            })
    return [{"tag": tag, "operations": ops} for tag, ops in groups.items()]


def _parameter(p: dict[str, Any]) -> dict[str, Any]:
    schema = p.get("schema") or {}
    return {
        "name": p.get("name", ""),
        "where": p.get("in", ""),
        "required": bool(p.get("required")),
        "type": _type(schema),
        "default": schema.get("default"),
        "description": p.get("description") or schema.get("description") or "",
    }


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "pattern" in schema:
        return f"{schema.get('type', 'string')} ({schema['pattern']})"
    if "anyOf" in schema:
        kinds = dict.fromkeys(_type(s) for s in schema["anyOf"] if s.get("type") != "null")
        return " or ".join(kinds) or "any"
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items') or {})}"
    return schema.get("type", "any")
