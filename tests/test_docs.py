"""docs/ stays in step with the code: every hook documented with its exact signature, and no
documented hook that does not exist."""

import inspect
import re
from pathlib import Path

from vidrl import KINDS
from vidrl.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = {
    name: fn for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "vidrl_spec")
}


def _signature(fn) -> str:
    ann = fn.__annotations__
    params = ", ".join(f"{p}: {ann[p]}" for p in inspect.signature(fn).parameters)
    return f"`{fn.__name__}({params}) -> {ann['return']}`"


def test_hooks_found():
    assert {k.hook for k in KINDS.values()} <= set(HOOKS)
    assert {"on_rollouts_scored", "on_step_end", "on_checkpoint_save", "on_checkpoint_load"} <= set(HOOKS)


def test_every_hook_is_documented_with_its_exact_signature():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    missing = [_signature(fn) for fn in HOOKS.values() if _signature(fn) not in doc]
    assert not missing, f"docs/hooks.md lacks (or misstates) these signatures: {missing}"


def test_no_stale_hook_sections():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^### (\w+)$", doc, re.M))
    assert documented == set(HOOKS)


def test_every_hookspec_has_a_docstring_contract():
    assert all((fn.__doc__ or "").strip() for fn in HOOKS.values())


def test_no_file_cites_a_path_outside_the_repository():
    """The specifications live in docs/ (docs/algorithms.md, with each paper's arXiv id)."""
    # spelled in pieces so that this file does not cite them itself
    outside = re.compile(
        "|".join(re.escape(s) for s in ("shared" + "/", "ALGORITHMS" + ".md", "DESIGN" + ".md"))
    )
    bad = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in ROOT.rglob("*")
        if p.suffix in {".py", ".md", ".yaml", ".toml", ".sh"} and not {".venv", ".git"} & set(p.parts)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert not bad, bad


def test_every_contract_field_is_documented():
    """Each dataclass of vidrl.types names every one of its fields (``field``) in its docstring, and
    docs/contract.md has a section for it."""
    import dataclasses

    from vidrl import types

    page = (ROOT / "docs" / "contract.md").read_text()
    classes = [
        c for c in vars(types).values() if dataclasses.is_dataclass(c) and c.__module__ == types.__name__
    ]
    assert len(classes) >= 15
    undocumented = [
        f"{c.__name__}.{f.name}"
        for c in classes
        for f in dataclasses.fields(c)
        if f"``{f.name}``" not in c.__doc__
    ]
    assert not undocumented, undocumented
    assert not [c.__name__ for c in classes if f"### {c.__name__}" not in page]
