"""How long a training loop waits for its next batch of decoded clips: the feed with
``data.num_workers`` 0 (decoded in the training thread when drawn) against decoding threads that
prefetch the next batch while a step trains.

A "step" here is the training thread sleeping for ``--step-seconds``, as it waits on a GPU
(the CPU is free meanwhile); each round draws ``--steps`` batches of ``--batch`` samples, every
sample a different 224×224, 30 fps synthetic mp4 (no clip cache), ``--frames`` frames at 2 fps.
Settings alternate round by round; reported: the median wait in ``draw()`` per step.

    python benchmarks/feed_prefetch.py --out benchmarks/results/cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vidrl import Session
from vidrl.config import DataConfig
from vidrl.data.datasets import load_dataset
from vidrl.data.synth import Scene, make_scene, write_mp4
from vidrl.engine.feed import Clips, PromptFeed, SampleStream


class _Processor:
    """All the feed reads of a processor when it only draws (``draw`` never runs it)."""

    class video_processor:  # noqa: N801 - the attribute name the feed reads
        temporal_patch_size = 2


def _data(root: Path, videos: int, seconds: float) -> Path:
    rows = []
    for i in range(videos):
        base = make_scene(np.random.default_rng(i), difficulty=2, size=224)
        write_mp4(Scene(base.squares, base.distractors, seconds, 30, 224), root / f"v{i}.mp4")
        rows.append({"id": str(i), "video": f"v{i}.mp4", "question": "How many?", "answer": "1"})
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "data.jsonl"


def _round(data: Path, workers: int, args: argparse.Namespace) -> list[float]:
    ds = load_dataset(data)
    config = DataConfig(fps=2.0, max_frames=args.frames, cache_clips=0, num_workers=workers)
    clips = Clips(ds, Session().load().create("video_backend", args.backend), config)
    stream = SampleStream(len(ds), args.batch, seed=0)
    feed = PromptFeed(ds, stream, clips, _Processor(), config, workers=workers)
    waits = []
    for _ in range(args.steps):
        t = time.perf_counter()
        feed.draw()
        waits.append(time.perf_counter() - t)
        time.sleep(args.step_seconds)  # the step trains on the GPU
    return waits[1:]  # the first draw has nothing prefetched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--step-seconds", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each synthetic video")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="pyav")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(Path(tmp), args.batch * args.steps, args.seconds)
        runs: dict[int, list[float]] = {w: [] for w in args.workers}
        for _ in range(args.rounds):
            for w in args.workers:
                runs[w].append(statistics.median(_round(data, w, args)))
    result = {"args": {k: v for k, v in vars(args).items() if k != "out"},
              "median_wait_s": {w: statistics.median(v) for w, v in runs.items()}, "runs": runs}  # fmt: skip
    for w, v in result["median_wait_s"].items():
        rounds = [round(x, 3) for x in runs[w]]
        print(f"num_workers {w}: median wait for a batch {v * 1000:.0f} ms (rounds: {rounds})")
    if args.out:
        (args.out / "feed-prefetch.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
