"""The third-party path end to end: examples/plugin-template is pip-installed (into a temporary
target directory, so the developer's environment is untouched), then discovered through its entry
point, listed, used by name in a config, and disabled from the environment."""

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidrl import load_config

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = {ep.name for ep in md.entry_points(group="vidrl") if ep.dist.metadata["Name"] == "vidrl"}
TEMPLATE = ROOT / "examples" / "plugin-template"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "plugin-template"  # a copy: the build leaves no litter here
    shutil.copytree(TEMPLATE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(target),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert list(target.glob("vidrl_template-0.1.0.dist-info/entry_points.txt"))
    return target


def _run(site, *args, disable=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDRL_")}
    env["PYTHONPATH"] = str(site)
    if disable:
        env["VIDRL_DISABLE_PLUGINS"] = disable
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_listed_by_vidrl_plugins(site):
    out = _run(site, "-m", "vidrl.cli", "plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert plugins["template"]["distribution"] == "vidrl-template"
    assert plugins["template"]["version"] == "0.1.0"
    assert plugins["template"]["components"] == {
        "advantage": ["median_baseline"],
        "loss": ["reinforce"],
        "reward": ["concise"],
        "augmenter": ["think_harder"],
        "tool": ["video_length"],
        "stage": ["checkpoint_eval"],
        "judge": ["shows_work"],
    }
    assert "grpo_family" in plugins


def test_disabled_by_environment(site):
    out = _run(site, "-m", "vidrl.cli", "plugins", "--json", disable="template")
    assert out.returncode == 0, out.stderr
    assert [p["name"] for p in json.loads(out.stdout)["plugins"]] == sorted(BUILTIN)


def test_usable_by_name_in_a_config(site, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "advantage: {name: median_baseline, options: {scale: 2.0}}\n"
        "rewards: [{name: concise, weight: 0.5, options: {max_words: 10}}]\n"
    )
    ok = _run(site, "-m", "vidrl.cli", "validate", str(cfg))
    assert ok.returncode == 0, ok.stderr
    off = _run(site, "-m", "vidrl.cli", "validate", str(cfg), disable="template")
    assert off.returncode == 1
    assert "advantage.name: unknown advantage 'median_baseline'" in off.stderr
    assert "rewards[0].name: unknown reward 'concise'" in off.stderr


def test_in_process_numbers_through_the_config(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    cfg, session = load_config({"advantage": {"name": "median_baseline", "options": {"scale": 2.0}}})
    est = session.create("advantage", cfg.advantage.name, cfg.advantage.options)
    out = est(torch.tensor([0.0, 1.0, 9.0]), torch.tensor([4, 4, 4]))
    assert out.advantages.tolist() == [-2.0, 0.0, 16.0]


def test_template_own_tests_pass(site):
    out = _run(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "15 passed" in out.stdout


def test_check_plugin_passes_on_the_template(site):
    out = _run(site, "-m", "vidrl.cli", "check-plugin", "template")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "template: all components conform" in out.stdout and out.stdout.count(": ok") == 7
