"""Run reports: the frame strip of a tool roll-out."""

import torch
from PIL import Image

from vidrl.tools.calls import tool_error
from vidrl.tools.multiturn import Conversation
from vidrl.tools.report import call_label, frame_strip, strip_panels
from vidrl.types import Frames, Observation, VideoInfo


def solid(colours: list[tuple[int, int, int]], times: list[float], h: int = 20, w: int = 30) -> Frames:
    pixels = torch.tensor(colours, dtype=torch.uint8)[:, None, None, :].expand(-1, h, w, 3).contiguous()
    n = len(colours)
    return Frames(pixels, torch.tensor(times), torch.arange(n), VideoInfo(n, 2.0, w, h))


def test_a_strip_has_one_row_per_panel_with_its_frames_in_order(tmp_path):
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    panels = [("prompt", solid([red, green], [0.0, 1.0])), ("error", None), ("call", solid([blue], [2.0]))]
    out = frame_strip(panels, "title", tmp_path / "sub" / "s.png", height=40)
    img = Image.open(out).convert("RGB")
    line, gap = 14, 4  # the layout of frame_strip
    assert img.size == (640, line + gap + (line + 40 + line + gap) * 2 + line + gap)
    row0 = line + gap + line  # top of the first row's frames; frames scaled 20x30 -> 40x60
    assert img.getpixel((gap + 30, row0 + 20)) == red
    assert img.getpixel((gap + 60 + gap + 30, row0 + 20)) == green
    row2 = row0 + 40 + line + gap + (line + gap) + line
    assert img.getpixel((gap + 30, row2 + 20)) == blue


def test_a_long_title_wraps_onto_at_most_three_lines(tmp_path):
    short = Image.open(frame_strip([("p", None)], "t", tmp_path / "a.png"))
    long = Image.open(frame_strip([("p", None)], "word " * 200, tmp_path / "b.png"))
    assert long.size == (short.size[0], short.size[1] + 2 * 14)


def test_a_strip_spreads_a_long_clip_over_max_frames(tmp_path):
    n = 40
    clip = solid([(i, i, i) for i in range(n)], [i / 2 for i in range(n)], h=10, w=10)
    out = frame_strip([("clip", clip)], "t", tmp_path / "s.png", height=10, max_frames=5)
    img = Image.open(out).convert("RGB")
    y = 14 + 4 + 14 + 5
    got = [img.getpixel((4 + k * 14 + 5, y))[0] for k in range(5)]
    assert got == [0, 10, 20, 29, 39]  # first and last frames kept, the rest uniform


def test_panels_label_each_call_and_keep_its_frames():
    clip = solid([(9, 9, 9)] * 2, [0.0, 1.0])
    seen = solid([(1, 2, 3)] * 2, [5.0, 5.5])
    conv = Conversation([], [], [], [], 0)
    conv.calls = [
        {"name": "get_video_clip_frame", "arguments": {"start_time": 5, "end_time": 6}, "ok": True,
         "text": "Video clip from 5 to 6 seconds.", "frames": 2, "info": {}},
        {"name": None, "arguments": {}, "ok": False, "text": "Error: not JSON", "frames": 0, "info": {}},
    ]  # fmt: skip
    conv.observations = [Observation("Video clip from 5 to 6 seconds.", seen), tool_error("not JSON")]
    panels = strip_panels(conv, clip)
    assert [p[1] for p in panels] == [clip, seen, None]
    assert panels[1][0] == "call 1: get_video_clip_frame(start_time=5, end_time=6) -> ok, 2 frames"
    assert panels[2][0] == "call 2: None() -> failed: Error: not JSON, 0 frames"
    assert call_label(conv.calls[0]).startswith("get_video_clip_frame(")
