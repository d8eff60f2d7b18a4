"""CI runs exactly README.md's two set-up commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup-commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its setup-commands block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_has_an_install_and_a_test_command():
    install, test = _readme_commands()
    assert "pip install" in install and "vidrl train" in install
    assert test.startswith("pytest")


def test_ci_runs_exactly_the_readme_commands():
    ci = [
        ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    readme = _readme_commands()
    runs = [ln for ln in ci if ln in readme]
    assert runs == readme, f".ci/run must run {readme}, in order; it runs {runs}"
    assert "set -euo pipefail" in ci
