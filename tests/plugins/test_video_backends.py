"""Decoding generated videos: the right frames and times, the same pixels from every backend,
and the promised errors for broken files."""

import json

import pytest
import torch

from vidrl import Session, VideoError
from vidrl.data.synth import Scene, Square, render
from vidrl.data.video import read_video

# every backend that can run here: decord and PyAV always; torchcodec where it and FFmpeg are installed
BACKENDS = [e.name for e in Session().load().registry("video_backend").entries() if e.obj.available()]


@pytest.fixture(scope="module")
def backends():
    s = Session().load()
    return {name: s.create("video_backend", name) for name in BACKENDS}


def test_burned_in_time_stamps_change_only_the_corner(backends, synth_data):
    path = str(synth_data.parent / _first_row(synth_data)["video"])
    plain = read_video(backends["decord"], path, fps=1.0)
    stamped = read_video(backends["decord"], path, fps=1.0, timestamps=True)
    changed = (plain.pixels != stamped.pixels).any(-1)  # [F, H, W]
    rows, cols = changed.any(0).nonzero(as_tuple=True)
    assert rows.max() < 20 and cols.max() < 50  # a small box in the top-left corner
    assert (stamped.pixels[:, 2:12, 2:30] > 200).all(-1).any(2).any(1).all()  # light text on every frame
    corners = stamped.pixels[:, :14, :40]
    assert all(not torch.equal(corners[i], corners[i + 1]) for i in range(len(corners) - 1))  # times differ


def _first_row(synth_data):
    return json.loads(synth_data.read_text().splitlines()[0])


def _scene(row):
    objs = [Square(**o) for o in row["metadata"]["objects"]]
    coloured = tuple(o for o in objs if o.colour != "grey")
    greys = tuple(o for o in objs if o.colour == "grey")
    return Scene(coloured, greys, row["duration"], row["metadata"]["fps"], 112)


@pytest.mark.parametrize("name", BACKENDS)
def test_each_frame_is_the_one_at_its_time_stamp(backends, synth_data, name):
    """Every decoded frame matches the scene drawn at its own time far better than the scene one
    frame earlier or later: frames and time stamps are the right ones."""
    row = _first_row(synth_data)
    scene = _scene(row)
    frames = read_video(backends[name], str(synth_data.parent / row["video"]), fps=4.0, max_frames=64)
    assert torch.allclose(frames.times, frames.indices.double() / scene.fps)
    assert frames.pixels.dtype == torch.uint8 and frames.pixels.shape[1:] == (112, 112, 3)

    def drawn(t):
        return torch.from_numpy(render(scene, t)).double()

    def dist(a, b):
        return (a.double() - b).abs().mean().item()

    step = 1 / scene.fps
    for k, t in enumerate(frames.times.tolist()):
        own = dist(frames.pixels[k], drawn(t))
        assert own < 2.0, (t, own)  # the encoder's rounding only
        for other in (t - step, t + step):
            if 0 <= other < scene.duration and dist(drawn(t), drawn(other)) > 0:
                assert own < dist(frames.pixels[k], drawn(other)), (t, other)


def test_decord_and_pyav_are_always_available():
    assert {"decord", "pyav"} <= set(BACKENDS)


def test_every_backend_gives_the_same_frames(backends, synth_data):
    path = str(synth_data.parent / _first_row(synth_data)["video"])
    a, *others = (read_video(backends[n], path, fps=3.0) for n in BACKENDS)
    for b in others:  # FFmpeg's decoder under each; their colour conversions may round differently
        assert torch.equal(a.indices, b.indices)
        assert (a.pixels.int() - b.pixels.int()).abs().max() <= 2


@pytest.mark.parametrize("name", BACKENDS)
def test_broken_files_raise_errors_naming_them(backends, tmp_path, synth_data, name):
    good = (synth_data.parent / _first_row(synth_data)["video"]).read_bytes()
    cases = {
        "missing.mp4": None,
        "empty.mp4": b"",
        "text.mp4": b"this is not a video at all\n" * 100,
        "truncated.mp4": good[: len(good) // 3],
    }
    for fname, data in cases.items():
        path = tmp_path / fname
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(VideoError) as e:
            read_video(backends[name], str(path))
        assert str(path) in str(e.value), (fname, str(e.value))
