"""The frame toolbox: argument validity at every boundary, frame times, the pixel budget, time
stamps, the zoom crop; on a fake backend whose pixels encode where they come from, and on a
real synthetic video."""

import pytest
import torch

import vidrl
from vidrl import ToolCall, ToolContext, call_tool
from vidrl.plugins.frame_toolbox import GetVideoClipFrame, ZoomInFrame, fit_pixels


class Coded(vidrl.VideoBackend):
    """A video of ``seconds`` at ``fps``, W×H; pixel (y, x) of frame i is (x % 256, y % 256, i % 256)."""

    name = "coded"

    def __init__(self, seconds=6.0, fps=8.0, width=200, height=100):
        super().__init__()
        self.info = vidrl.VideoInfo(round(seconds * fps), fps, width, height)
        self.decoded = []

    def probe(self, path):
        return self.info

    def decode(self, path, indices):
        self.decoded.append(list(indices))
        h, w = self.info.height, self.info.width
        x = torch.arange(w).expand(h, w) % 256
        y = torch.arange(h).unsqueeze(1).expand(h, w) % 256
        return torch.stack([torch.stack([x, y, torch.full((h, w), i % 256)], -1) for i in indices]).to(
            torch.uint8
        )


def context(backend, duration=None):
    return ToolContext(vidrl.Sample("s", "q", "a"), "video.mp4", backend, duration)


def clip(s, e, backend=None, **options):
    tool = GetVideoClipFrame(GetVideoClipFrame.Config(**options))
    return call_tool({tool.name: tool}, ToolCall(tool.name, {"start_time": s, "end_time": e}),
                     context(backend or Coded()))  # fmt: skip


@pytest.mark.parametrize(
    ("s", "e", "ok"),
    [
        (0, 1.0, False),  # exactly 1 s: the clip must be longer
        (0, 1.01, True),
        (-0.01, 2, False),
        (0, 6.0, True),  # the whole video: end = duration
        (0, 6.01, False),
        (3, 3, False),
        (4, 2, False),
        (4.9, 6.0, True),
    ],
)
def test_clip_validity(s, e, ok):
    got = clip(s, e)
    assert got.ok is ok, got.text
    if not ok:
        assert got.frames is None and "need 0 <= start_time < end_time <= 6.00" in got.text


def test_clip_frames_are_at_2_fps_within_the_window_and_stamped():
    got = clip(1.5, 4.5, timestamps=False)
    times = got.frames.times.tolist()
    assert (
        len(times) == 6 and times == sorted(times) and 1.5 <= times[0] and times[-1] <= 4.5
    )  # the window's end included, as qwen_vl_utils
    assert (
        got.info["times"] == [round(t, 3) for t in times]
        and got.text == "Video clip from 1.5 to 4.5 seconds."
    )
    # pixel channel 2 holds the frame index: the frames are those of the times
    assert got.frames.pixels[:, 0, 0, 2].tolist() == [round(t * 8) % 256 for t in times]
    stamped = clip(1.5, 4.5)
    corner = (stamped.frames.pixels[:, :8, :20] != got.frames.pixels[:, :8, :20]).any(-1).any(-1).any(-1)
    assert corner.all() and torch.equal(stamped.frames.pixels[:, 50:], got.frames.pixels[:, 50:])


def test_a_long_clip_is_subsampled_to_64_frames():
    backend = Coded(seconds=100.0, fps=10.0)
    got = clip(0, 100, backend)
    times = got.frames.times
    assert len(times) == 64 and times[0] == 0 and times[-1] > 99.5
    gaps = times.diff()
    assert gaps.min() > 1.4 and gaps.max() < 1.7  # uniform: 100 s / 63 gaps
    assert len(clip(0, 10, backend).frames.times) == 20  # 2 fps when that fits


def test_the_pixel_budget_keeps_the_aspect_ratio():
    big = Coded(width=640, height=480)
    px = clip(0, 2, big, max_pixels=64 * 28 * 28).frames.pixels
    h, w = px.shape[1:3]
    assert h * w <= 64 * 28 * 28 and abs(w / h - 640 / 480) < 0.02
    small = clip(0, 2, Coded(width=40, height=30), max_pixels=64 * 28 * 28).frames.pixels
    assert small.shape[1:3] == (30, 40)  # never enlarged
    assert fit_pixels(torch.zeros(1, 30, 40, 3, dtype=torch.uint8), 4800, enlarge=True).shape[1:3] == (60, 80)


def zoom(args, backend=None, **options):
    tool = ZoomInFrame(ZoomInFrame.Config(**options))
    return call_tool({tool.name: tool}, ToolCall(tool.name, args), context(backend or Coded()))


BOX = {"x1": 0.5, "y1": 0.25, "x2": 1.0, "y2": 0.75}


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"time": 0}, True),
        ({"time": 6.0}, True),
        ({"time": 6.01}, False),
        ({"time": -0.1}, False),
        ({"x2": 1.01}, False),
        ({"x1": -0.01}, False),
        ({"x1": 0.6, "x2": 0.6}, False),
        ({"x1": 0.6, "x2": 0.5}, False),
        ({"y1": 0.5, "y2": 0.54}, False),  # a side under min_box (0.05)
        ({"y1": 0.5, "y2": 0.55}, True),
    ],
)
def test_zoom_validity(change, ok):
    got = zoom({"time": 2.0, **BOX, **change})
    assert got.ok is ok, got.text


def test_zoom_crops_the_box_of_the_nearest_frame():
    backend = Coded()
    got = zoom({"time": 2.06, **BOX}, backend, timestamps=False, max_pixels=200 * 100)
    px = got.frames.pixels
    assert backend.decoded == [[16]] and got.info["time"] == 2.0  # frame 16 = 2.0 s at 8 fps
    assert px.shape[0] == 2 and torch.equal(px[0], px[1])  # one frame, twice (the temporal patch)
    x, y = px[..., 0].float(), px[..., 1].float()
    assert x.min() >= 99 and x.max() <= 199 and y.min() >= 24 and y.max() <= 74  # columns 100-199, rows 25-74
    assert px.shape[1] * px.shape[2] <= 200 * 100 and px.shape[1] * px.shape[2] > 0.9 * 200 * 100  # enlarged


def test_no_video_is_an_error_observation():
    tool = GetVideoClipFrame()
    got = tool({"start_time": 0, "end_time": 2}, ToolContext(vidrl.Sample("s", "q", "a"), None, None, None))
    assert not got.ok and "no video" in got.text


def test_on_a_real_synthetic_video(synth_data):
    ds = vidrl.load_dataset(synth_data)
    sample = ds.samples[0]
    backend = vidrl.Session().load().create("video_backend", "pyav")
    ctx = ToolContext(sample, str(ds.path(sample.video)), backend, sample.duration)
    got = GetVideoClipFrame()({"start_time": 1.0, "end_time": 3.0}, ctx)
    assert got.ok and len(got.frames.times) == 4 and got.frames.pixels.dtype == torch.uint8
    assert float(got.frames.times[0]) >= 1.0 and float(got.frames.times[-1]) <= 3.0


def _has_colour(pixels, rgb, tol=40):
    """Whether any pixel of [F, H, W, 3] is within ``tol`` of ``rgb`` on every channel."""
    return bool(((pixels.int() - torch.tensor(rgb)).abs() <= tol).all(-1).any())


def test_the_long_clip_task_is_missed_by_uniform_frames_and_found_by_the_tool(tmp_path):
    from vidrl.data.synth import COLOURS, LONG_MISSED_FRAMES, synthesize

    path = synthesize(tmp_path, num=3, seed=4, tasks=["long_clip"], tool_responses=True)
    ds = vidrl.load_dataset(path)
    backend = vidrl.Session().load().create("video_backend", "pyav")
    assert len(ds) == 3
    for sample in ds.samples:
        m = sample.metadata
        (a, b), (s, e) = m["window"], m["event"]
        colour = COLOURS[m["objects"][0]["colour"]]
        assert (
            sample.task_type == "multiple_choice"
            and sample.options["ABCD".index(sample.answer)] == m["objects"][0]["colour"]
        )
        assert 0 <= a <= s < e <= b <= 60 and b - a == 2 and f"between {a} and {b} seconds" in sample.question
        video = str(ds.path(sample.video))
        first_look = vidrl.read_video(backend, video, fps=2.0, min_frames=4, max_frames=LONG_MISSED_FRAMES)
        assert not _has_colour(first_look.pixels, colour)
        ctx = ToolContext(sample, video, backend, sample.duration)
        call = vidrl.parse_tool_call(m["response"])  # the reference response calls on the window
        assert (call.name, dict(call.arguments)) == ("get_video_clip_frame", {"start_time": a, "end_time": b})
        assert m["response"].endswith(f"</tool_call><answer>{sample.answer}</answer>")
        found = GetVideoClipFrame()(call.arguments, ctx)
        assert found.ok and _has_colour(found.frames.pixels, colour)
