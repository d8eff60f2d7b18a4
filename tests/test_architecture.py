"""Import rules of DESIGN.md §1: core never imports a plugin, vidrl.kernels or triton; plugins
import only the public API (``vidrl`` and ``vidrl.ops``). Plus ruff, which enforces the same
rules for core as banned imports."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"vidrl", "vidrl.ops", "vidrl.text"}


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
