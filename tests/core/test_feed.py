"""Sample streams: shuffled epochs, rank shares whose union does not depend on the number of
ranks, exact resume from the saved position; feeds that skip or raise on bad videos."""

import dataclasses
import json
import shutil

import pytest
import torch

from vidrl.config import DataConfig
from vidrl.data.datasets import load_dataset
from vidrl.data.video import VideoError
from vidrl.engine.feed import Clips, PromptFeed, SampleStream
from vidrl.plugin.session import Session


def test_every_epoch_is_a_permutation_and_epochs_differ():
    s = SampleStream(7, 3, seed=1)
    seen = s.take(14)
    assert sorted(seen[:7]) == sorted(seen[7:]) == list(range(7))
    assert seen[:7] != seen[7:]
    assert s.state_dict() == {"epoch": 2, "cursor": 0}


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_the_global_batches_of_one_process(world):
    one = SampleStream(10, 2 * world, seed=5)
    ranks = [SampleStream(10, 2, seed=5, rank=r, world=world) for r in range(world)]
    for _ in range(4):
        assert one.next_indices() == [i for s in ranks for i in s.next_indices()]


def test_resuming_a_stream_continues_the_same_sequence():
    a = SampleStream(5, 2, seed=9)
    a.next_indices(), a.next_indices(), a.next_indices()
    b = SampleStream(5, 2, seed=9)
    b.load_state_dict(a.state_dict())
    assert [a.next_indices() for _ in range(5)] == [b.next_indices() for _ in range(5)]


@pytest.mark.parametrize(
    "bad", [dict(n=0, batch_size=1, seed=0), dict(n=3, batch_size=1, seed=0, rank=2, world=2)]
)
def test_bad_stream_arguments(bad):
    with pytest.raises(ValueError, match="need n >= 1"):
        SampleStream(**bad)


def _feed(tmp_path, synth_data, on_bad_row, video_prompts, workers=0, rows=3, batch_size=4):
    """A feed over ``rows`` synthetic rows after a row whose video is broken (and, with more
    than 3 rows, a second broken one in the middle)."""
    if not (tmp_path / "videos").exists():
        shutil.copytree(synth_data.parent / "videos", tmp_path / "videos")
        (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    good = [json.loads(r) for r in synth_data.read_text().splitlines()[:rows]]
    data = [{**good[0], "id": "broken", "video": "videos/broken.mp4"}, *good]
    if rows > 3:
        data.insert(len(data) // 2, {**good[0], "id": "broken-2", "video": "videos/broken.mp4"})
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    ds = load_dataset(tmp_path / "data.jsonl")
    config = DataConfig(on_bad_row=on_bad_row, max_frames=2, cache_clips=0)
    clips = Clips(ds, Session().load().create("video_backend", "pyav"), config)
    stream = SampleStream(len(ds), batch_size, seed=0)
    return PromptFeed(ds, stream, clips, video_prompts[1], config, workers=workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_video_raises_naming_the_sample(tmp_path, synth_data, video_prompts, workers):
    feed = _feed(tmp_path, synth_data, "error", video_prompts, workers)
    with pytest.raises(VideoError, match="sample 'broken'"):
        feed.next()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_video_is_skipped_counted_and_replaced(tmp_path, synth_data, video_prompts, workers):
    feed = _feed(
        tmp_path, synth_data, "skip", video_prompts, workers
    )  # a batch of all 4 rows: "broken" in it
    samples, batch = feed.next()
    assert feed.skipped >= 1 and len(samples) == 4 and "broken" not in {s.id for s in samples}
    assert batch["input_ids"].shape[0] == 4


def _draws(feed, n):
    """n draws: (sample ids, clips' pixels, the feed's position after each)."""
    out = []
    for _ in range(n):
        samples, clips = feed.draw()
        out.append(([s.id for s in samples], [c.pixels for c in clips], feed.state_dict()))
    return out


def _same(a, b):
    return all(
        ids == ids2 and pos == pos2 and all(torch.equal(x, y) for x, y in zip(px, px2, strict=True))
        for (ids, px, pos), (ids2, px2, pos2) in zip(a, b, strict=True)
    )


def test_decoding_threads_and_prefetch_draw_what_the_training_thread_draws(
    tmp_path, synth_data, video_prompts
):
    """Same samples, clips and positions with 0 or 3 workers, over epochs with two broken rows."""
    serial = _draws(_feed(tmp_path, synth_data, "skip", video_prompts, 0, rows=6, batch_size=3), 6)
    threaded = _draws(_feed(tmp_path, synth_data, "skip", video_prompts, 3, rows=6, batch_size=3), 6)
    assert _same(serial, threaded)
    assert serial[-1][2]["skipped"] >= 2 and serial[-1][2]["epoch"] >= 1


def test_a_prefetching_feed_resumes_at_the_last_batch_handed_out(tmp_path, synth_data, video_prompts):
    a = _feed(tmp_path, synth_data, "skip", video_prompts, 2, rows=6, batch_size=3)
    _draws(a, 2)  # a third batch is being decoded meanwhile
    b = _feed(tmp_path, synth_data, "skip", video_prompts, 2, rows=6, batch_size=3)
    b.load_state_dict(a.state_dict())
    assert b.skipped == a.skipped
    assert _same(_draws(a, 3), _draws(b, 3))


def test_a_segment_shows_only_its_frames_and_one_outside_the_video_is_a_bad_row(synth_data, video_prompts):
    """``segment`` (MVBench's start/end): the clip's frames all fall within it; cached apart from
    the whole video's clip; a segment past the video's end names the sample."""
    from vidrl.models.inputs import Geometry

    row = json.loads(synth_data.read_text().splitlines()[0])
    whole = {**row, "id": "whole"}
    part = {**row, "id": "part", "segment": [1.0, 2.5]}
    ds = load_dataset([whole, part], root=synth_data.parent)
    clips = Clips(ds, Session().load().create("video_backend", "pyav"), DataConfig(max_frames=8))
    geo = Geometry.of(video_prompts[1])
    full, cut = clips.get(ds[0], geo), clips.get(ds[1], geo)
    assert ds[1].segment == (1.0, 2.5) and cut.times.min() >= 1.0 and cut.times.max() <= 2.5
    assert full.times.max() > 2.5 and clips.get(ds[0], geo) is full  # cached apart
    late = dataclasses.replace(ds[1], id="late", segment=(row["duration"] + 1, row["duration"] + 2))
    with pytest.raises(VideoError, match=r"sample 'late': window .* outside the video"):
        clips.get(late, geo)
