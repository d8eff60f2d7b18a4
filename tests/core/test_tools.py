"""Tool calls from untrusted model output: parsing, argument checks, running (errors become
observations, never exceptions)."""

import json

import pytest

import vidrl
from vidrl import Observation, ToolCall, call_tool, check_arguments, parse_tool_call, tool_schemas


def call(body):
    return f"<think>look again</think><tool_call>{body}</tool_call>"


def test_a_well_formed_call():
    got = parse_tool_call(call('{"name": "clip", "arguments": {"start_time": 1, "end_time": 2.5}}'))
    assert got == ToolCall("clip", {"start_time": 1, "end_time": 2.5})
    two = call('{"name": "a", "arguments": {}}') + call('{"name": "b"}')
    assert parse_tool_call(two) == ToolCall("b", {})  # the last call; arguments default to {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no call here", "no <tool_call>"),
        ('<tool_call>{"name": "a"}', "no <tool_call>"),  # never closed
        (call("{'name': 'a'}"), "not valid JSON"),  # Python literal syntax is not JSON
        (call('{"name": "a", "arguments": {}'), "not valid JSON"),
        (call("__import__('os').system('ls')"), "not valid JSON"),
        (call('["a", {}]'), "must be a JSON object"),
        (call('{"name": 3}'), "must be a JSON object"),
        (call('{"name": "a", "arguments": [1, 2]}'), "'arguments' must be a JSON object"),
        (call('{"name": "a", "arguments": {}, "run": true}'), "unexpected keys"),
        (call('{"name": "a", "arguments": {"x": "' + "y" * 3000 + '"}}'), "at most 2048"),
        (call("[" * 5000 + "]" * 5000), "at most"),
    ],
)
def test_malformed_calls_are_error_observations(text, says):
    got = parse_tool_call(text)
    assert isinstance(got, Observation) and not got.ok and says in got.text


def test_deep_nesting_within_the_size_limit_is_refused_not_crashed():
    got = parse_tool_call(call("[" * 1000 + "]" * 1000), max_chars=10_000)
    assert isinstance(got, Observation) and not got.ok


SCHEMA = {
    "type": "object",
    "properties": {"t": {"type": "number"}, "n": {"type": "integer"}, "s": {"type": "string"}},
    "required": ["t"],
}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"t": 1.5}, None),
        ({"t": 1, "n": 2, "s": "x"}, None),
        ({}, "missing argument(s) ['t']"),
        ({"t": 1, "u": 2}, "unknown argument(s) ['u']"),
        ({"t": "1.5"}, "'t' must be a number"),
        ({"t": True}, "'t' must be a number"),  # JSON true is not a number
        ({"t": 1, "n": 2.5}, "'n' must be a integer"),
        ({"t": None}, "'t' must be a number"),
    ],
)
def test_check_arguments(args, problem):
    got = check_arguments(SCHEMA, args)
    assert got == problem if problem is None else problem in got


class Echo(vidrl.Tool):
    name = "echo"
    parameters = SCHEMA

    def __call__(self, arguments, context):
        if arguments["t"] < 0:
            raise RuntimeError("negative")
        return Observation(f"t={arguments['t']}")


def test_call_tool():
    tools = {"echo": Echo()}
    assert call_tool(tools, ToolCall("echo", {"t": 2}), None).text == "t=2"
    unknown = call_tool(tools, ToolCall("ecko", {}), None)
    assert not unknown.ok and "unknown tool 'ecko'" in unknown.text and "echo" in unknown.text
    bad = call_tool(tools, ToolCall("echo", {"t": "2"}), None)
    assert not bad.ok and "echo: argument 't' must be a number" in bad.text
    raised = call_tool(tools, ToolCall("echo", {"t": -1}), None)
    assert not raised.ok and "echo failed: RuntimeError: negative" in raised.text


def test_tool_schemas_are_qwen_function_json():
    (line,) = tool_schemas({"echo": Echo()}).splitlines()
    assert json.loads(line) == {"type": "function", "function": {"name": "echo", "description": "",
                                                                 "parameters": SCHEMA}}  # fmt: skip


def test_a_tool_that_returns_something_else_is_an_error_observation():
    class Sloppy(vidrl.Tool):
        name = "sloppy"

        def __call__(self, arguments, context):
            return "done"

    out = call_tool({"sloppy": Sloppy()}, ToolCall("sloppy", {}), None)
    assert not out.ok and out.text == "Error: sloppy returned str, not a vidrl.Observation"


def test_arguments_of_a_union_type_or_no_type():
    schema = {"type": "object", "properties": {"u": {"type": ["string", "null"]}, "any": {}}}
    assert check_arguments(schema, {"u": None, "any": [1]}) is None
    assert check_arguments(schema, {"u": "x", "any": "y"}) is None
    assert "argument 'u' must be a ['string', 'null']" in check_arguments(schema, {"u": 1})
