"""Parity with ``qwen_vl_utils`` (what Qwen2.5-VL / Qwen3-VL users and the papers' code use to pick
and size video frames), over a grid of video lengths and rates, sampling rates, frame bounds,
windows and pixel budgets: the same frame indices and the same frame sizes, except where
documented (``vidrl.data.video.plan_frames``, ``vidrl.models.inputs.Geometry.resize``)."""

import itertools

import pytest
import torch

from vidrl import VideoInfo
from vidrl.data.video import plan_frames
from vidrl.models.inputs import Geometry

vp = pytest.importorskip("qwen_vl_utils.vision_process")


def _qwen_indices(info, fps, min_frames, max_frames, start, end):
    """qwen_vl_utils' frame indices (``_read_video_decord``'s arithmetic), or None when it refuses."""
    ele = {"fps": fps, "min_frames": min_frames, "max_frames": max_frames}
    if start or end is not None:
        ele.update(video_start=start, video_end=end)
    try:
        first, last, count = vp.calculate_video_frame_range(ele, info.num_frames, info.fps)
        n = vp.smart_nframes(ele, total_frames=count, video_fps=info.fps)
    except ValueError:
        return None
    return torch.linspace(first, last, n).round().long().tolist()


def _inside(video, window):
    frames, rate = video
    start, end = window
    return start < min(end or frames / rate, frames / rate)


GRID = [
    (video, fps, bounds, window)
    for video, fps, bounds, window in itertools.product(
        [(1, 25.0), (3, 8.0), (15, 30.0), (99, 29.97), (250, 24.0), (1830, 30.0), (18000, 30.0), (601, 7.5)],
        [0.5, 1.0, 2.0, 4.0],
        [(4, 64), (2, 16), (4, 768), (3, 7)],
        [(0.0, None), (1.0, 3.5), (0.2, 2.0)],
    )
    if _inside(video, window)  # a window past the end of the video is refused by both
]


@pytest.mark.parametrize(("video", "fps", "bounds", "window"), GRID)
def test_frame_indices_match_qwen_vl_utils(video, fps, bounds, window):
    (frames, rate), (lo, hi), (start, end) = video, bounds, window
    info = VideoInfo(num_frames=frames, fps=rate, width=64, height=64)
    try:
        ours = plan_frames(info, fps=fps, min_frames=lo, max_frames=hi, start=start, end=end)
    except ValueError:
        ours = None
    qwen = _qwen_indices(info, fps, lo, hi, start, end)
    if qwen is None:  # qwen_vl_utils refuses fewer frames than the factor: vidrl repeats (or refuses)
        assert ours is None or (len(ours) == 2 and len(set(ours)) == 1), (ours, qwen)
    else:
        assert ours == qwen


@pytest.mark.parametrize("factor", [28, 32])
def test_frame_sizes_match_qwen_vl_utils_within_the_budget(factor):
    """The same smart_resize, except for frames whose short side reaches one factor before the area
    fits: qwen_vl_utils then exceeds ``max_pixels`` or (0.0.14) returns a side of 0 px; vidrl keeps
    the short side at one factor and cuts the long one to fit."""
    g = Geometry(factor=factor, temporal=2)
    for h, w in itertools.product((30, 57, 112, 224, 480, 720, 1080, 2160), (40, 112, 640, 1280, 1920, 3840)):
        for lo, hi in (
            (factor**2, 128 * 128),
            (128 * factor**2, 768 * factor**2),
            (factor**2 * 4, 448 * 448),
        ):
            qwen = vp.smart_resize(h, w, factor, lo, hi)
            ours = g.resize(h, w, lo, hi)
            if min(qwen) >= factor and qwen[0] * qwen[1] <= hi:
                assert ours == qwen, (h, w, lo, hi)
            else:  # qwen_vl_utils exceeds the budget, or (0.0.14) returns a side of 0 px there
                assert ours[0] * ours[1] <= hi and min(ours) == factor, (h, w, lo, hi, ours, qwen)
