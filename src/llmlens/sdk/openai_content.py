"""What an LLM call said, as OTel GenAI message JSON: only built when content capture is on.

`gen_ai.input.messages`, `gen_ai.system_instructions` and `gen_ai.output.messages` in the
conventions' parts format (text, tool calls, tool call responses).
"""

from __future__ import annotations

import json
from typing import Any

from llmlens import semconv


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content or ():
        if isinstance(part, dict) and "text" in part:
            parts.append({"type": "text", "content": part["text"]})
    return parts


def _messages_json(messages: Any) -> str:
    out = []
    for m in messages or ():
        if not isinstance(m, dict):
            continue
        parts = _parts(m.get("content"))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                          "arguments": fn.get("arguments")})
        if m.get("role") == "tool":
            parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "result": m.get("content")}]
        out.append({"role": m.get("role", "user"), "parts": parts})
    return json.dumps(out, ensure_ascii=False, default=str)


def request_content(operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "messages" in kwargs:
        return {semconv.INPUT_MESSAGES: _messages_json(kwargs.get("messages"))}
    if operation == "embeddings":
        value = kwargs.get("input")
        return {semconv.INPUT_MESSAGES: json.dumps(
            [{"role": "user", "parts": _parts(value if isinstance(value, str) else None)
              or [{"type": "text", "content": str(v)} for v in value or ()]}], ensure_ascii=False, default=str)}
    attrs = {}  # Responses API
    value = kwargs.get("input")
    attrs[semconv.INPUT_MESSAGES] = (_messages_json([{"role": "user", "content": value}]) if isinstance(value, str)
                                     else _messages_json(value))
    if kwargs.get("instructions"):
        attrs[semconv.SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": kwargs["instructions"]}])
    return attrs


def chat_output_messages(choices: Any) -> str:
    out = []
    for c in choices:
        message = c.message
        parts = _parts(message.content) if message.content else []
        for tc in message.tool_calls or ():
            fn = getattr(tc, "function", None)
            parts.append({"type": "tool_call", "id": tc.id, "name": getattr(fn, "name", None),
                          "arguments": getattr(fn, "arguments", None)})
        out.append({"role": message.role, "parts": parts, "finish_reason": c.finish_reason})
    return json.dumps(out, ensure_ascii=False, default=str)
