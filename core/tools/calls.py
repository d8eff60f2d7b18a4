"""Tool calls: parsing untrusted model output, checking arguments, running a tool.

A model calls a tool by writing ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
(the Qwen function-calling format). The text is model output, so it is parsed with ``json`` only
(never evaluated), bounded in size, and checked against the tool's JSON schema before the tool
runs; every failure — malformed JSON, an unknown tool, a bad argument, a tool that raises —
becomes an error ``Observation`` the model sees on its next turn, never an exception that stops
the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from vidrl.errors import choices_hint
from vidrl.plugin.components import JSON_TYPES, Tool
from vidrl.types import Observation, ToolCall, ToolContext

OPEN, CLOSE = "<tool_call>", "</tool_call>"
#: deprecated (use ``sample.extra(vidrl.ToolResults)``): the ``Sample.metadata`` key under which a
#: tool roll-out also records ``{"calls": n, "succeeded": k}``, until the key is removed
TOOL_RESULTS = "tool_results"
_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.S)


def tool_error(message: str, **info: Any) -> Observation:
    """An ``ok=False`` observation: "Error: <message>" for the model, the message in ``info``."""
    return Observation(f"Error: {message}", ok=False, info={"error": message, **info})


def parse_tool_call(text: str, max_chars: int = 2048) -> ToolCall | Observation:
    """The last ``<tool_call>`` block of ``text`` as a ``ToolCall``, or an error ``Observation``
    saying what is wrong with it (too long, not JSON, not {"name": str, "arguments": object})."""
    blocks = _CALL.findall(text)
    if not blocks:
        return tool_error(f"no {OPEN}...{CLOSE} block")
    body = blocks[-1].strip()
    if len(body) > max_chars:
        return tool_error(f"tool call of {len(body)} characters; at most {max_chars}")
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as e:
        return tool_error(f"tool call is not valid JSON ({e})")
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return tool_error('tool call must be a JSON object {"name": "...", "arguments": {...}}')
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return tool_error(f"'arguments' must be a JSON object, got {type(arguments).__name__}")
    extra = set(value) - {"name", "arguments"}
    if extra:
        return tool_error(f"unexpected keys in the tool call: {sorted(extra)}")
    return ToolCall(value["name"], arguments)


def check_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """Why ``arguments`` do not fit the tool's ``parameters`` schema (an object schema with
    ``properties`` of simple types, ``required``; no other keys allowed), or None."""
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", ()) if k not in arguments]
    if missing:
        return f"missing argument(s) {missing}"
    unknown = [k for k in arguments if k not in props]
    if unknown:
        return f"unknown argument(s) {unknown}; valid: {sorted(props)}"
    for key, value in arguments.items():
        want = props[key].get("type")
        if not _fits(value, want):
            return f"argument {key!r} must be a {want}, got {json.dumps(value)[:40]}"
    return None


def _fits(value: Any, want: str | list[str] | None) -> bool:
    """Whether ``value`` has the schema type ``want`` (a list: any of them; None: any value)."""
    if want is None:
        return True
    if isinstance(want, list):
        return any(_fits(value, w) for w in want)
    if want == "boolean":
        return isinstance(value, bool)
    return isinstance(value, JSON_TYPES[want]) and not isinstance(value, bool)


def call_tool(tools: Mapping[str, Tool], call: ToolCall, context: ToolContext) -> Observation:
    """Run ``call`` against ``tools`` (by name): an unknown tool, bad arguments or an exception
    inside the tool are error observations."""
    if call.name not in tools:
        return tool_error(f"unknown tool {call.name!r}; {choices_hint(call.name, tools)}")
    tool = tools[call.name]
    problem = check_arguments(tool.parameters, call.arguments)
    if problem:
        return tool_error(f"{call.name}: {problem}")
    try:
        out = tool(call.arguments, context)
    except Exception as e:  # a tool's own bug must not stop the run; the model sees the error
        return tool_error(f"{call.name} failed: {type(e).__name__}: {e}")
    if not isinstance(out, Observation):  # the same: the tool's bug, shown to the model and logged
        return tool_error(f"{call.name} returned {type(out).__name__}, not a vidrl.Observation")
    return out


def tool_schemas(tools: Mapping[str, Tool]) -> str:
    """The tools as Qwen function-calling JSON lines, for the system prompt."""
    return "\n".join(
        json.dumps({"type": "function", "function": {"name": t.name, "description": t.description,
                                                     "parameters": dict(t.parameters)}})
        for t in tools.values()
    )  # fmt: skip
