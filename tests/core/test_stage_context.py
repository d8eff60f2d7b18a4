"""``StageContext`` is what stages get: the run context implements every member with the same
parameters, and the built-in stages use nothing outside it."""

import ast
import inspect
from pathlib import Path

import pytest

from vidrl.engine.context import RunContext
from vidrl.engine.stage_context import StageContext

ROOT = Path(__file__).resolve().parents[2]
METHODS = {n for n, v in vars(StageContext).items() if inspect.isfunction(v) and not n.startswith("_")}
ATTRIBUTES = set(StageContext.__annotations__)


def test_the_protocol_is_about_twenty_documented_members():
    assert 15 <= len(METHODS | ATTRIBUTES) <= 25
    assert all((getattr(StageContext, m).__doc__ or "").strip() for m in METHODS)
    doc = StageContext.__doc__
    assert all(f"``{a}``" in doc for a in ATTRIBUTES)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_run_context_implements_each_method_with_the_same_parameters(name):
    want = inspect.signature(getattr(StageContext, name))
    got = inspect.signature(getattr(RunContext, name))
    assert list(got.parameters) == list(want.parameters), name
    for p in want.parameters.values():
        assert (got.parameters[p.name].default is inspect.Parameter.empty) == (
            p.default is inspect.Parameter.empty
        )


def test_run_context_sets_each_attribute():
    source = inspect.getsource(RunContext.__init__)
    missing = [a for a in ATTRIBUTES if f"self.{a}" not in source]
    assert not missing, missing


@pytest.mark.parametrize("path", ["plugins/stages.py", "plugins/dpo.py", "plugins/veripo/loop.py"])
def test_built_in_stages_use_only_the_protocol(path):
    tree = ast.parse((ROOT / path).read_text())
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "context"
    }
    assert used, path
    assert used <= METHODS | ATTRIBUTES, sorted(used - METHODS - ATTRIBUTES)
