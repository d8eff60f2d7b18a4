"""Synthetic video tasks with known answers: real mp4 files of coloured squares that appear,
move and disappear, and rows for four task types (docs/data.md; the demo's and tests' data).

Every video is drawn from a seeded generator, so a seed gives the same rows and the same pixels
(up to the encoder's rounding). Each row's ``metadata["objects"]`` records every square's colour,
visible span and trajectory, which the tests use to check decoded pixels.

Difficulty (``difficulty`` ≥ 0) adds objects, shortens events and adds grey distractors.

``long_clip`` (opt-in) is a task for the frame toolbox: a 60-s video in which one coloured square
shows for one second, placed midway between two of the frames that uniform sampling of
``LONG_MISSED_FRAMES`` frames sees (so the first look misses it); the question names a 2-s window
around it (whole seconds), where ``get_video_clip_frame`` finds it. Multiple choice over four
colours in a fixed order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (40, 60, 230),
    "yellow": (230, 220, 30),
    "magenta": (220, 40, 220),
    "cyan": (30, 220, 220),
}
BACKGROUND = 24
DISTRACTOR = (128, 128, 128)
LETTERS = "ABCD"
TASKS = ("multiple_choice", "numeric", "temporal_grounding", "grounded_qa")
LONG, LONG_SECONDS, LONG_FPS, LONG_MISSED_FRAMES = "long_clip", 60.0, 4, 8
LONG_COLOURS = ("red", "green", "blue", "yellow")  # long_clip's options, always in this order


@dataclass(frozen=True)
class Square:
    """A square of side ``size`` px visible for start ≤ t < end, moving from (x0, y0) to (x1, y1)
    (top-left corner, px) over that span."""

    colour: str
    start: float
    end: float
    x0: float
    y0: float
    x1: float
    y1: float
    size: int

    def corner(self, t: float) -> tuple[int, int]:
        a = (t - self.start) / (self.end - self.start)
        return round(self.x0 + a * (self.x1 - self.x0)), round(self.y0 + a * (self.y1 - self.y0))

    def centre(self, t: float) -> tuple[int, int]:
        x, y = self.corner(t)
        return x + self.size // 2, y + self.size // 2


@dataclass(frozen=True)
class Scene:
    squares: tuple[Square, ...]  # coloured, ordered by start time
    distractors: tuple[Square, ...]
    duration: float
    fps: int
    size: int


def make_scene(rng: np.random.Generator, difficulty: int = 0, size: int = 112, fps: int = 8) -> Scene:
    """Draw a scene: 2 + difficulty coloured squares (at most 5) with distinct colours and start
    times, events lasting 2 s down to 0.75 s as difficulty grows, and ``difficulty`` distractors."""
    duration = float(rng.integers(6, 11))
    n = min(2 + difficulty, 5)
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    longest = max(0.75, 3.0 - 0.75 * difficulty)
    starts = np.sort(rng.choice(np.arange(0.0, duration - 1.0, 0.5), size=n, replace=False))
    side = max(10, size // 6)

    def square(colour: str, start: float, end: float) -> Square:
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size - side, size=4))
        return Square(colour, float(start), float(end), x0, y0, x1, y1, side)

    def end(start: float) -> float:  # on a frame boundary, so the visible frames match the span exactly
        return min(duration, round((start + float(rng.uniform(0.75, longest))) * fps) / fps)

    squares = tuple(square(str(c), s, end(s)) for c, s in zip(colours, starts, strict=True))
    distractors = tuple(square("grey", 0.0, duration) for _ in range(difficulty))
    return Scene(squares, distractors, duration, fps, size)


def render(scene: Scene, t: float) -> np.ndarray:
    """The frame at time t: [size, size, 3] uint8 RGB; later squares are drawn on top."""
    img = np.full((scene.size, scene.size, 3), BACKGROUND, np.uint8)
    for sq in (*scene.distractors, *scene.squares):
        if sq.start <= t < sq.end:
            x, y = sq.corner(t)
            img[y : y + sq.size, x : x + sq.size] = DISTRACTOR if sq.colour == "grey" else COLOURS[sq.colour]
    return img


def write_mp4(scene: Scene, path: Path) -> None:
    """Encode with libx264 (yuv420p, crf 12: colours stay within a few levels at square centres)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=scene.fps, options={"crf": "12", "threads": "1"})
        stream.width = stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        for i in range(round(scene.duration * scene.fps)):
            frame = av.VideoFrame.from_ndarray(render(scene, i / scene.fps), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def rows_for(scene: Scene, video: str, vid: str, rng: np.random.Generator, tasks=TASKS) -> Iterator[dict]:
    """One row per task type for the scene (keys of ``vidrl.Sample``)."""
    sq = scene.squares
    meta = {"objects": [asdict(s) for s in (*sq, *scene.distractors)], "fps": scene.fps}
    base = {"video": video, "duration": scene.duration, "metadata": meta}
    target = sq[int(rng.integers(len(sq)))]
    if "multiple_choice" in tasks:
        others = [c for c in COLOURS if c != sq[0].colour]
        options = [sq[0].colour, *rng.choice(others, size=3, replace=False).tolist()]
        rng.shuffle(options)
        letter = LETTERS[options.index(sq[0].colour)]
        q = "Which colour is the first square to appear?"
        yield {"id": f"{vid}-mc", "task_type": "multiple_choice", "question": q, "options": options,
               "answer": letter, **base}  # fmt: skip
    if "numeric" in tasks:
        q = "How many coloured (not grey) squares appear in the video?"
        yield {"id": f"{vid}-count", "task_type": "numeric", "question": q, "answer": str(len(sq)), **base}
    if "temporal_grounding" in tasks:
        q = f"When is the {target.colour} square visible? Give the start and end time in seconds."
        span = [round(target.start, 3), round(target.end, 3)]
        yield {"id": f"{vid}-tg", "task_type": "temporal_grounding", "question": q,
               "answer": f"{span[0]}-{span[1]}", "span": span, **base}  # fmt: skip
    if "grounded_qa" in tasks and len(sq) > 1:
        second = sq[1]
        q = "Which colour is the second square to appear, and when is it visible?"
        yield {"id": f"{vid}-gqa", "task_type": "grounded_qa", "question": q, "answer": second.colour,
               "span": [round(second.start, 3), round(second.end, 3)], **base}  # fmt: skip


def make_long_scene(rng: np.random.Generator, size: int = 112) -> tuple[Scene, tuple[int, int]]:
    """A ``long_clip`` scene and the window (whole seconds) the question names: one square for
    1 s, centred in a gap between the frames a uniform ``LONG_MISSED_FRAMES``-frame plan decodes;
    the window is the 2 s from the whole second before it (one window per gap, so
    ``LONG_MISSED_FRAMES`` − 1 windows in all: few enough for a tiny model to learn the call)."""
    from vidrl.data.video import plan_frames
    from vidrl.types import VideoInfo

    info = VideoInfo(round(LONG_SECONDS * LONG_FPS), LONG_FPS, size, size)
    seen = sorted({i / LONG_FPS for i in plan_frames(info, 2.0, LONG_MISSED_FRAMES, LONG_MISSED_FRAMES)})
    gaps = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if b - a >= 4]
    a, b = gaps[int(rng.integers(len(gaps)))]
    start = round((a + b) / 2 * LONG_FPS) / LONG_FPS - 0.5
    side = max(10, size // 4)
    x, y = (float(v) for v in rng.uniform(0, size - side, size=2))
    colour = str(rng.choice(LONG_COLOURS))
    square = Square(colour, start, start + 1.0, x, y, x, y, side)
    window = (math.floor(start), math.floor(start) + 2)  # holds [start, start + 1]; one per gap
    return Scene((square,), (), LONG_SECONDS, LONG_FPS, size), window


def long_row(
    scene: Scene, window: tuple[int, int], video: str, vid: str, tool_response: bool = False
) -> dict:
    """The ``long_clip`` row of a long scene (a multiple-choice ``vidrl.Sample``); with
    ``tool_response``, a reference ``response`` for a warm-up: ``get_video_clip_frame`` on the
    named window, then the answer."""
    sq = scene.squares[0]
    options = list(LONG_COLOURS)  # a fixed order: the answer letter names the colour seen
    q = (
        f"A coloured square appears for one second somewhere between {window[0]} and {window[1]} "
        "seconds. Which colour is it?"
    )
    meta = {"objects": [asdict(sq)], "fps": scene.fps, "window": list(window), "event": [sq.start, sq.end],
            "task": LONG}  # fmt: skip
    answer = LETTERS[options.index(sq.colour)]
    row = {"id": f"{vid}-long", "task_type": "multiple_choice", "question": q, "options": options,
           "answer": answer, "video": video, "duration": scene.duration, "metadata": meta}  # fmt: skip
    if tool_response:
        call = {"name": "get_video_clip_frame", "arguments": {"start_time": window[0], "end_time": window[1]}}
        row["response"] = f"<tool_call>{json.dumps(call)}</tool_call><answer>{answer}</answer>"
    return row


def synthesize(
    out: Path,
    num: int,
    seed: int = 0,
    difficulty: int | Sequence[int] = 0,
    size: int = 112,
    tasks: Sequence[str] = TASKS,
    tool_responses: bool = False,
) -> Path:
    """Write ``num`` videos under ``out/videos`` and their rows (``tasks`` only) to
    ``out/data.jsonl``; return it. A sequence of difficulties is cycled over the videos (so the
    number of squares, and the count answer, varies). ``tool_responses``: ``long_clip`` rows carry
    a reference tool-call response (``long_row``)."""
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    unknown = set(tasks) - {*TASKS, LONG}
    if num < 1 or not levels or min(levels) < 0 or size < 56 or unknown or not tasks:
        raise ValueError(
            f"need num >= 1, difficulties >= 0, size >= 56, tasks from {[*TASKS, LONG]}; "
            f"got {num}, {difficulty}, {size}, {list(tasks)}"
        )
    out = Path(out)
    rows = []
    for i in _progress(range(num), "synthesizing videos"):
        if set(tasks) & set(TASKS):
            rng = np.random.default_rng([seed, i])  # one stream per video: the same video at any num
            scene = make_scene(rng, levels[i % len(levels)], size)
            rel = f"videos/{i:05d}.mp4"
            write_mp4(scene, out / rel)
            rows.extend(rows_for(scene, rel, f"s{seed}-v{i:05d}", rng, tasks))
        if LONG in tasks:
            rng = np.random.default_rng([seed, i, 1])
            scene, window = make_long_scene(rng, size)
            rel = f"videos/{i:05d}-long.mp4"
            write_mp4(scene, out / rel)
            rows.append(long_row(scene, window, rel, f"s{seed}-v{i:05d}", tool_responses))
    path = out / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _progress(it, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="video", leave=False)
