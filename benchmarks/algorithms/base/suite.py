"""The comparison suite: synthetic video tasks with difficulty levels, on the generator of
``vidrl.data.synth`` (its squares, scenes and mp4 writer), sized so that a small model can learn
each task's easy level and not all of its hard ones.

Every video is 8 s at 8 fps, 112 × 112 px, with squares in four colours whose options are always
listed in the same order (red, green, blue, yellow: the letter names the colour, so a small model
does not also have to find the colour among shuffled options). Each video carries one row of
one task at one level (``metadata.category`` = ``<task>/L<level>``, so evaluation reports each):

- ``colour`` (multiple choice): "Which colour is the square?" L0 one still square for 4 s;
  L1 moving, with two grey distractors; L2 visible for 0.5 s only, which the 8 sampled frames
  miss half of the time (a ceiling of 0.625: half seen, a quarter of the rest guessed).
- ``first`` (multiple choice): "Which colour is the first square to appear?" L0 two squares far
  apart in time; L1 starts 1–2 s apart, overlapping; L2 three squares.
- ``count`` (numeric): "How many coloured squares appear?" L0 one or two squares one after the
  other; L1 one to three, with a grey distractor; L2 one to four, 1-s events.
- ``when`` (temporal grounding, IoU): "When is the <colour> square visible?" on whole seconds.
  L0 one square; L1 two; L2 two and a grey distractor.

``write_suite(out, split, num, seed)`` writes ``out/<split>/data.jsonl`` and the videos; the train
and held-out splits come from different seeds (``SPLIT_SEEDS``), so they never share a video.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vidrl.data.synth import LETTERS, Scene, Square, write_mp4

COLOURS = ("red", "green", "blue", "yellow")
TASKS = ("colour", "first", "count", "when")
LEVELS = (0, 1, 2)
DURATION, FPS, SIZE, SIDE = 8.0, 8, 112, 20
SPLIT_SEEDS = {"train": 1000, "eval": 2000}


def _square(rng: np.random.Generator, colour: str, start: float, length: float, move: bool) -> Square:
    x0, y0 = (float(v) for v in rng.uniform(0, SIZE - SIDE, size=2))
    x1, y1 = (float(v) for v in rng.uniform(0, SIZE - SIDE, size=2)) if move else (x0, y0)
    end = min(DURATION, start + length)
    return Square(colour, float(start), float(end), x0, y0, x1, y1, SIDE)


def _grey(rng: np.random.Generator, n: int) -> tuple[Square, ...]:
    return tuple(_square(rng, "grey", 0.0, DURATION, True) for _ in range(n))


def _colours(rng: np.random.Generator, n: int) -> list[str]:
    return [str(c) for c in rng.choice(COLOURS, size=n, replace=False)]


def _sequence(
    rng: np.random.Generator, n: int, length: tuple[float, float], move: bool
) -> tuple[Square, ...]:
    """``n`` squares of distinct colours, one after the other on whole seconds, each ``length`` s."""
    starts = np.sort(rng.choice(np.arange(0, int(DURATION) - 1), size=n, replace=False))
    return tuple(_square(rng, c, float(s), float(rng.choice(np.arange(*length))), move)
                 for c, s in zip(_colours(rng, n), starts, strict=True))  # fmt: skip


def scene_for(task: str, level: int, rng: np.random.Generator) -> tuple[Scene, dict]:
    """A scene for ``task`` at ``level`` and its row fields (question, answer, options or span)."""
    if level not in LEVELS:
        raise ValueError(f"unknown suite level {level!r}; choices: {list(LEVELS)}")
    greys: tuple[Square, ...] = ()
    if task == "colour":
        c = _colours(rng, 1)[0]
        start, length = (
            (float(rng.integers(0, 8)) / 2, 0.5) if level == 2 else (float(rng.integers(0, 4)), 4.0)
        )
        squares = (_square(rng, c, start, length, level > 0),)
        greys = _grey(rng, 2) if level == 1 else ()
        fields = {"question": "Which colour is the square?", "answer": LETTERS[COLOURS.index(c)]}
    elif task == "first":
        n = 3 if level == 2 else 2
        if level == 0:
            a, b = float(rng.integers(0, 2)), float(rng.integers(4, 6))
            cs = _colours(rng, 2)
            squares = (_square(rng, cs[0], a, 2.0, False), _square(rng, cs[1], b, 2.0, False))
        else:
            squares = _sequence(rng, n, (2.0, 4.0), True)
        fields = {"question": "Which colour is the first square to appear?",
                  "answer": LETTERS[COLOURS.index(squares[0].colour)]}  # fmt: skip
    elif task == "count":
        most, length = {0: (2, (3.0, 4.0)), 1: (3, (2.0, 3.0)), 2: (4, (1.0, 2.0))}[level]
        n = int(rng.integers(1, most + 1))
        squares, greys = _sequence(rng, n, length, level > 0), _grey(rng, 1) if level else ()
        fields = {"question": "How many coloured squares appear?", "answer": str(n)}
    elif task == "when":
        squares = _sequence(rng, 1 if level == 0 else 2, (2.0, 5.0), level > 0)
        greys = _grey(rng, 1) if level == 2 else ()
        t = squares[int(rng.integers(len(squares)))]
        span = [t.start, t.end]
        q = f"When is the {t.colour} square visible? Give the start and end time in seconds."
        fields = {"question": q, "answer": f"{span[0]:g}-{span[1]:g}", "span": span}
    else:
        raise ValueError(f"unknown suite task {task!r}; choices: {list(TASKS)}")
    return Scene(squares, greys, DURATION, FPS, SIZE), fields


TASK_TYPES = {"colour": "multiple_choice", "first": "multiple_choice", "count": "numeric",
              "when": "temporal_grounding"}  # fmt: skip


def write_suite(out: Path, split: str, num: int, seed: int = 0, tasks=TASKS, levels=LEVELS) -> Path:
    """``num`` videos (tasks × levels cycled) under ``out/<split>``; returns its data.jsonl."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; choices: {list(SPLIT_SEEDS)}")
    root, rows = Path(out) / split, []
    for i in range(num):
        task, level = tasks[i % len(tasks)], levels[(i // len(tasks)) % len(levels)]
        rng = np.random.default_rng([seed, SPLIT_SEEDS[split], i])
        scene, fields = scene_for(task, level, rng)
        rel = f"videos/{i:05d}.mp4"
        write_mp4(scene, root / rel)
        options = {"options": list(COLOURS)} if TASK_TYPES[task] == "multiple_choice" else {}
        meta = {
            "category": f"{task}/L{level}",
            "objects": [asdict(s) for s in (*scene.squares, *scene.distractors)],
        }
        rows.append({"id": f"{split}-{i:05d}", "task_type": TASK_TYPES[task], **fields, **options,
                     "video": rel, "duration": DURATION, "metadata": meta})  # fmt: skip
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


if __name__ == "__main__":
    import sys

    for split, n in (("train", int(sys.argv[2])), ("eval", int(sys.argv[3]))):
        print(write_suite(Path(sys.argv[1]), split, n))
