"""The wheel holds every package under core/, plugins/ and kernels/ (a new subpackage must not be
silently left out), the embedded demo config, the console script and the built-in entry points."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"core": "vidrl", "plugins": "vidrl/plugins", "kernels": "vidrl/kernels"}
pytestmark = pytest.mark.slow


def _source_packages() -> set[str]:
    """Installed package paths of every source directory that holds Python files."""
    found = set()
    for src, dest in MAPPING.items():
        for d in [ROOT / src, *(p for p in (ROOT / src).rglob("*") if p.is_dir())]:
            if "__pycache__" not in d.parts and any(d.glob("*.py")):
                found.add(str(Path(dest) / d.relative_to(ROOT / src)).rstrip("/."))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "vidrl"
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "runs", ".*cache"
    )
    shutil.copytree(ROOT, src, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(out),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    (path,) = out.glob("vidrl-*.whl")
    return zipfile.ZipFile(path)


def test_every_source_package_is_in_the_wheel(wheel):
    names = wheel.namelist()
    packaged = {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    missing = _source_packages() - packaged
    assert not missing, f"packages missing from the wheel (add them to [tool.setuptools] packages): {missing}"
    for src, dest in MAPPING.items():
        for py in (ROOT / src).rglob("*.py"):
            assert f"{dest}/{py.relative_to(ROOT / src)}" in names


def test_demo_config_entry_points_and_script(wheel):
    names = wheel.namelist()
    assert "vidrl/demo.yaml" in names
    (eps,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(eps).decode()
    section = text.split("[vidrl]\n", 1)[1]
    for name in (
        "grpo_family",
        "dgrpo",
        "reg_grpo",
        "difficulty_aug",
        "dpo",
        "judges",
        "veripo",
        "frame_toolbox",
        "stages",
        "rewards",
        "video_backends",
    ):
        assert f"{name} = vidrl.plugins.{name}\n" in section, name
    assert "[console_scripts]\nvidrl = vidrl.cli:main" in text


def test_no_tests_or_examples_leak_into_the_wheel(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert tops == {"vidrl", "vidrl-0.1.0.dist-info"}
