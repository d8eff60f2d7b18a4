"""CPU benchmarks of video decoding and input preparation (pytest-benchmark).

- frames decoded per second by each backend, sampling 2 fps (64 frames at most) from a 60 s,
  30 fps, 224×224 synthetic clip: decord seeks, PyAV decodes up to the last frame asked for;
- the time ``vidrl.models.inputs.prepare_batch`` takes to turn 4 decoded clips into one model-ready
  batch for a tiny Qwen2.5-VL (chat template, budget fitting, resize, patchify, tokenise).

    pytest benchmarks/test_cpu_video.py --benchmark-columns=median,iqr,rounds
"""

from __future__ import annotations

import numpy as np
import pytest

from vidrl import Session
from vidrl.data.synth import Scene, make_scene, write_mp4
from vidrl.data.video import read_video

DURATION, FPS, SIZE = 60.0, 30, 224


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    base = make_scene(np.random.default_rng(0), difficulty=2, size=SIZE)
    scene = Scene(base.squares, base.distractors, DURATION, FPS, SIZE)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_mp4(scene, path)
    return str(path)


BACKENDS = [e.name for e in Session().load().registry("video_backend").entries() if e.obj.available()]


@pytest.mark.parametrize("name", BACKENDS)
def test_decode_60s_clip(benchmark, clip, name):
    backend = Session().load().create("video_backend", name)
    frames = benchmark.pedantic(read_video, args=(backend, clip), kwargs={"fps": 2.0, "max_frames": 64},
                                rounds=5, warmup_rounds=1)  # fmt: skip
    assert frames.pixels.shape == (64, SIZE, SIZE, 3)
    benchmark.extra_info["frames"] = 64
    benchmark.extra_info["frames_per_s"] = round(64 / benchmark.stats.stats.median, 1)


def test_prepare_model_ready_batch(benchmark, clip, tmp_path):
    """vidrl.models.inputs.prepare_batch: chat template, budget fitting and resizing, processor."""
    from transformers import AutoProcessor

    from vidrl import Sample
    from vidrl.config import VisionBudget
    from vidrl.models.inputs import prepare_batch
    from vidrl.models.tiny import build_tiny_model

    processor = AutoProcessor.from_pretrained(build_tiny_model("qwen2_5_vl", tmp_path / "m"))
    backend = Session().load().create("video_backend", "decord")
    clips = [read_video(backend, clip, fps=0.5, max_frames=16) for _ in range(4)]
    samples = [Sample(id=str(i), question="When is the red square visible?", answer="1-2") for i in range(4)]
    budget = VisionBudget(max_prompt_tokens=1024, max_pixels=128 * 128)
    batch, _ = benchmark.pedantic(
        prepare_batch, args=(processor, samples, clips, budget), rounds=5, warmup_rounds=1
    )
    assert batch["input_ids"].shape[0] == 4
    benchmark.extra_info["batch"] = "4 clips x 16 frames, 224 px to a 128x128 budget"
