"""PyAV on a long video: frames sought (to the keyframe before each wanted frame) against frames
decoded sequentially up to the last one wanted, on a synthetic 10-minute clip (libx264, the
default keyframe interval of 250 frames), sampling 64 frames as training does (2 fps, at most 64).
Alternates the two ``--rounds`` times; checks both give the same pixels (and decord's, when it is
installed); prints the medians.

    python benchmarks/pyav_seek.py [--minutes 10] [--fps 30] [--side 112] [--out benchmarks/results/cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vidrl
from vidrl.data.synth import Scene, make_scene, write_mp4
from vidrl.data.video import read_video
from vidrl.plugins import video_backends


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--side", type=int, default=112)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    session = vidrl.Session().load()
    pyav = session.create("video_backend", "pyav")
    with tempfile.TemporaryDirectory() as tmp:
        base = make_scene(np.random.default_rng(0), difficulty=1, size=args.side)
        path = Path(tmp) / "long.mp4"
        write_mp4(Scene(base.squares, base.distractors, args.minutes * 60, args.fps, args.side), path)
        plan = {"fps": 2.0, "max_frames": 64}
        times: dict[str, list[float]] = {"sequential": [], "seeking": []}
        clips = {}
        for _ in range(args.rounds):
            for mode, gap in (("sequential", 10**9), ("seeking", video_backends.SEEK_GAP)):
                saved, video_backends.SEEK_GAP = video_backends.SEEK_GAP, gap
                start = time.perf_counter()
                clips[mode] = read_video(pyav, str(path), **plan)
                times[mode].append(time.perf_counter() - start)
                video_backends.SEEK_GAP = saved
        same = torch.equal(clips["sequential"].pixels, clips["seeking"].pixels)
        if session.registry("video_backend").get("decord").unavailable_reason() is None:
            decord = read_video(session.create("video_backend", "decord"), str(path), **plan)
            same = same and torch.equal(decord.pixels, clips["seeking"].pixels)
    result = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "same_pixels": same,
              "median_s": {k: statistics.median(v) for k, v in times.items()}, "runs": times}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.out:
        (args.out / f"pyav-seek-{args.side}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
