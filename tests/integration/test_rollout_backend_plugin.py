"""A roll-out backend written as a plugin and chosen by the run's ``rollout``: what the engine
hands it (unrepeated prompts, G, the clips as fitted, the stop token) and when it tells it that
the weights changed."""

import math

import pytest
from transformers import AutoTokenizer

import vidrl
from vidrl import load_config
from vidrl.engine.pipeline import train

pytestmark = pytest.mark.slow
BACKENDS = []


class Recording(vidrl.HFGenerate):
    """``hf_generate`` that records every request and every ``sync``."""

    name = "recording"

    def __init__(self, config=None):
        super().__init__(config)
        self.requests, self.syncs = [], 0
        BACKENDS.append(self)

    def generate(self, request):
        self.requests.append(request)
        return super().generate(request)

    def sync(self):
        self.syncs += 1


class RecordingPlugin:
    @vidrl.hookimpl
    def register_rollout_backends(self, register):
        register(Recording)


def test_the_configured_backend_gets_every_rollout_with_its_fitted_clips(tiny_model_dir, tmp_path):
    rl = {"steps": 2, "prompts_per_step": 2, "group_size": 3, "micro_batch_size": 6, "max_new_tokens": 4}
    raw = {
        "model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
        "data": {"synth": {"train_videos": 4, "eval_videos": 2}, "max_frames": 4},
        "stages": [{"name": "rl", "options": rl}],
        "advantage": "grpo",
        "loss": "ppo_clip",
        "rewards": ["multiple_choice"],
        "rollout": {"name": "recording", "options": {"share_prompt": False}},
        "log": {"progress": False},
        "eval": {"before": True, "between_stages": False, "after": False, "max_new_tokens": 3},
    }
    config, session = load_config(raw, extra_plugins=[(RecordingPlugin(), "test_recording")])
    BACKENDS.clear()
    train(config, session, tmp_path / "run")
    (backend,) = BACKENDS  # one backend for the whole run
    assert backend.config.share_prompt is False
    sizes = [r.group_size for r in backend.requests]
    first_step = sizes.index(3)  # the evaluation before the stages answers greedily, one per prompt
    assert first_step > 0 and set(sizes[:first_step]) == {1}
    assert [(r.group_size, r.num_prompts) for r in backend.requests[first_step:]] == [(3, 2), (3, 2)]
    im_end = AutoTokenizer.from_pretrained(raw["model"]["path"]).convert_tokens_to_ids("<|im_end|>")
    for request in backend.requests:
        assert request.stop_ids == (im_end,) and request.pad_id != im_end
        grid = request.batch["video_grid_thw"].tolist()
        assert len(request.frames) == request.num_prompts == len(grid)
        for frames, (t, h, w) in zip(request.frames, grid, strict=True):  # exactly what was patchified
            f, height, width, _ = frames.pixels.shape
            assert [t, h, w] == [math.ceil(f / 2), height // 14, width // 14]
    # the evaluation's and the stage's starts, and after each step's update
    assert backend.syncs == 2 + rl["steps"]
