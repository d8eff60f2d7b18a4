"""Frame planning and backend selection (decoding itself: tests/plugins/test_video_backends.py)."""

import pytest

import vidrl
from vidrl import Session, VideoError, VideoInfo
from vidrl.data.video import plan_frames, select_backend

INFO = VideoInfo(num_frames=80, fps=8.0, width=112, height=112)  # 10 s


def test_fps_sampling_spreads_over_the_clip():
    idx = plan_frames(INFO, fps=2.0, min_frames=4, max_frames=64)
    assert len(idx) == 20 and idx[0] == 0 and idx[-1] == 79
    assert all(b > a for a, b in zip(idx, idx[1:], strict=False))


def test_long_clip_is_subsampled_to_max_frames():
    idx = plan_frames(INFO, fps=8.0, max_frames=16)
    assert len(idx) == 16 and idx[0] == 0 and idx[-1] == 79


def test_count_is_a_multiple_of_the_frame_factor_and_at_least_min():
    assert len(plan_frames(INFO, fps=0.5, min_frames=3, frame_factor=2)) == 4  # 5 → 4, ≥ 3 → 4
    assert len(plan_frames(INFO, fps=0.1, min_frames=1, frame_factor=2)) == 2


def test_window_restricts_frames():
    idx = plan_frames(INFO, fps=2.0, start=2.0, end=4.0)  # frames 16..32, as qwen_vl_utils counts them
    assert idx == [16, 21, 27, 32]


def test_a_short_video_gives_the_frames_it_has_and_a_still_one_repeats_its_frame():
    tiny = VideoInfo(num_frames=3, fps=8.0, width=56, height=56)
    assert plan_frames(tiny, fps=2.0, min_frames=4) == [0, 2]  # min_frames capped by the 3 frames, then ↓ 2
    still = VideoInfo(num_frames=1, fps=25.0, width=56, height=56)
    assert plan_frames(still, fps=2.0, min_frames=4) == [0, 0]  # qwen_vl_utils fails here


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fps": 0}, "need fps > 0"),
        ({"min_frames": 9, "max_frames": 4}, "min_frames <= max_frames"),
        ({"start": 5.0, "end": 5.0}, "is empty"),
        ({"start": 11.0}, "is empty or outside"),
    ],  # fmt: skip
)
def test_bad_plans(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_frames(INFO, **kwargs)


def test_auto_prefers_decord_then_pyav():
    reg = Session().load().registry("video_backend")
    auto = select_backend(reg)
    usable = [e for e in reg.entries() if e.obj.unavailable_reason() is None]
    assert auto.name == "auto" and [m.name for m in auto.members] == [
        e.name for e in sorted(usable, key=lambda e: -e.obj.priority)
    ]
    assert auto.members[0].name == "decord" and auto.members[-1].name == "pyav"
    assert select_backend(reg, "pyav").name == "pyav"


def test_unavailable_backend_is_refused_with_the_reason():
    class Ghost(vidrl.VideoBackend):
        name = "ghost"
        priority = 99

        @classmethod
        def unavailable_reason(cls):
            return "ghostlib is not installed"

        def probe(self, path):
            raise AssertionError

        def decode(self, path, indices):
            raise AssertionError

    class P:
        @vidrl.hookimpl
        def register_video_backends(self, register):
            register(Ghost)

    s = Session()
    s.add_plugin(P(), "ghosts")
    reg = s.load().registry("video_backend")
    assert "ghost" not in [m.name for m in select_backend(reg).members]  # auto skips what cannot run
    refused = "'ghost' cannot run here: ghostlib is not installed; available: decord"
    with pytest.raises(VideoError, match=refused):
        select_backend(reg, "ghost")
