"""Shared fixtures. ``fake_dist`` installs a real (if minimal) distribution on sys.path: a
``.dist-info`` with METADATA and entry_points.txt plus its modules, which importlib.metadata
discovers exactly as it discovers a pip-installed plugin."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VIDRL_PLUGINS", raising=False)
    monkeypatch.delenv("VIDRL_DISABLE_PLUGINS", raising=False)

    def make(dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, mod, raising=False)  # never reuse another test's module
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[vidrl]\n{eps}")
        return site

    return make


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch):
    """Tests never inherit the developer's plugin selection."""
    monkeypatch.delenv("VIDRL_PLUGINS", raising=False)
    monkeypatch.delenv("VIDRL_DISABLE_PLUGINS", raising=False)


# Triton kernels run in the interpreter (on CPU tensors) when there is no GPU. It must be set
# before any @triton.jit function is defined, i.e. before vidrl.kernels.* modules are imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """A small synthetic data set (3 videos, 12 rows), made once per test session."""
    from vidrl.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth"), num=3, seed=11, difficulty=1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``tiny_model_dir(arch)``: a tiny model directory of that architecture, built once."""
    from vidrl.models.tiny import build_tiny_model

    built: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("tiny")

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_tiny_model(arch, base / arch)
        return built[arch]

    return get


@pytest.fixture(scope="session")
def video_prompts(tiny_model_dir, synth_data):
    """(model path, processor, prompt batch, samples): two synthetic video prompts prepared for
    the tiny Qwen2.5-VL, 4 frames each."""
    from transformers import AutoProcessor

    from vidrl import Session
    from vidrl.data.datasets import load_dataset
    from vidrl.data.video import read_video
    from vidrl.models.inputs import prepare_batch

    path = tiny_model_dir("qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(path)
    ds = load_dataset(synth_data)
    backend = Session().load().create("video_backend", "decord")
    samples = ds.samples[:2]
    clips = [read_video(backend, str(ds.path(s.video)), fps=1.0, max_frames=4) for s in samples]
    batch, _ = prepare_batch(processor, samples, clips)
    return path, processor, batch, samples
