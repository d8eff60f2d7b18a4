"""Import rules of docs/architecture.md: core never imports a plugin, vidrl.kernels or triton; plugins
import only the public API (``vidrl`` and ``vidrl.ops``). Plus ruff, which enforces the same
rules for core as banned imports."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"vidrl", "vidrl.ops", "vidrl.text", "vidrl.testing"}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_core_imports_no_plugin_no_kernels_no_triton():
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files("core")
        for line, mod in _imports(p)
        if mod.split(".")[0] == "triton" or mod.startswith(("vidrl.plugins", "vidrl.kernels"))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", ["plugins", "kernels", "examples/plugin-template"])
def test_plugins_use_only_the_public_api(folder):
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files(folder)
        for line, mod in _imports(p)
        if mod.startswith("vidrl.")
        and mod not in PUBLIC
        and not mod.startswith(("vidrl.plugins", "vidrl.kernels"))
    ]
    assert not bad, "\n".join(bad)


def test_importing_vidrl_needs_no_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # any `import triton` now raises ImportError
        "import vidrl, vidrl.cli, vidrl.ops\n"
        "assert not any(m.startswith('vidrl.kernels') for m in sys.modules), 'core imported vidrl.kernels'\n"
        "s = vidrl.Session().load()\n"  # the kernels plugin loads, and says it cannot run
        "assert 'grpo' in s.registry('advantage') and 'token_logprobs' in s.registry('kernel')\n"
        "where = vidrl.ops.dispatch.describe()['token_logprobs']\n"
        "assert 'unavailable here: triton is not installed' in where, where\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the dev extra"
    out = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


#: core's wings, lowest first ("" is the facade, vidrl/__init__.py): a module may import its own wing
#: and the wings before it, never a later one (lazy imports inside functions included), so the wings
#: form a stack without cycles
WINGS = (
    *("errors", "types", "text", "ops", "plugin", "config", "data", "models", "tools", "engine"),
    *("", "testing", "cli"),
)


def _core_modules() -> dict[str, Path]:
    out = {}
    for p in _files("core"):
        parts = ["vidrl", *p.relative_to(ROOT / "core").with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _core_imports(path: Path, modules: dict[str, Path], lazy: bool) -> set[str]:
    """Core modules ``path`` imports: at module level (``TYPE_CHECKING`` blocks left out), plus those
    inside functions when ``lazy``. ``from vidrl import ops`` imports ``vidrl.ops``, not ``vidrl``."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for n in nodes:
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                continue
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
                continue
            if isinstance(n, ast.Import):
                found.update(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                subs = {f"{n.module}.{a.name}" for a in n.names} & modules.keys()
                found.update(subs if len(subs) == len(n.names) else {n.module, *subs})
            for child in ("body", "orelse", "handlers", "finalbody"):
                visit(getattr(n, child, []))

    visit(ast.parse(path.read_text()).body)
    return found & modules.keys()


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_core_wings_import_only_downwards():
    modules = _core_modules()
    assert {_wing(m) for m in modules} <= set(WINGS), "a new wing must take its place in WINGS"
    bad = [
        f"{m} imports {d}"
        for m, p in modules.items()
        for d in _core_imports(p, modules, lazy=True)
        if WINGS.index(_wing(d)) > WINGS.index(_wing(m))
    ]
    assert not bad, "\n".join(bad)


def test_core_has_no_import_cycles():
    modules = _core_modules()
    graph = {m: _core_imports(p, modules, lazy=False) - {m} for m, p in modules.items()}
    # a module is on a cycle when it can reach itself
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            assert m != start, f"{start} imports itself through {sorted(seen)}"
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
