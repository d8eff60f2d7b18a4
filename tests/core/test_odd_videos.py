"""Odd and broken video files the tests make themselves: ``backend: auto`` reads every file some
backend can read (and says which), names the plainest cause for a file none can, keeps the
libraries' log lines out of the output, and ``data check`` agrees with training, row by row."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import vidrl
from vidrl.data.datasets import check_dataset
from vidrl.data.video import Fallback, VideoError, read_video, select_backend

av = pytest.importorskip("av")
REGISTRY = vidrl.Session().load().registry("video_backend")
HAS_DECORD = REGISTRY.get("decord").unavailable_reason() is None


def _write(path, width, height, frames=10, fps=5):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)  # a colour per frame: a wrong frame shows
            image[..., 0], image[..., 1], image[..., 2] = i % 256, (i // 256) * 60, 128
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def _audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for _ in range(5):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """name → path of each odd or broken file."""
    d = tmp_path_factory.mktemp("odd")
    ok = _write(d / "ok.mp4", 64, 48, frames=30)
    data = open(ok, "rb").read()
    files = {
        "ok": ok,
        "tiny": _write(d / "tiny.mp4", 8, 8),
        "narrow": _write(d / "narrow.mp4", 4, 1000),
        "still": _write(d / "still.mp4", 64, 64, frames=1),
        "audio": _audio_only(d / "audio.m4a"),
        "missing": str(d / "missing.mp4"),
    }
    for name, size in (("half", len(data) // 2), ("header", 64), ("empty", 0)):
        (d / f"{name}.mp4").write_bytes(data[:size])
        files[name] = str(d / f"{name}.mp4")
    (d / "folder.mp4").mkdir()
    os.mkfifo(d / "pipe.mp4")
    files.update(folder=str(d / "folder.mp4"), pipe=str(d / "pipe.mp4"))
    return files


@pytest.mark.parametrize("name", ["ok", "tiny", "narrow", "still"])
def test_auto_reads_every_file_some_backend_can(odd, name):
    backend = select_backend(REGISTRY, "auto")
    frames = read_video(backend, odd[name], fps=2.0, min_frames=2, max_frames=8)
    assert frames.pixels.shape[0] % 2 == 0 and frames.pixels.shape[-1] == 3
    if HAS_DECORD and name in ("tiny", "narrow"):  # decord's "The size must exactly match"
        with pytest.raises(VideoError):
            read_video(REGISTRY.get("decord")(), odd[name], fps=2.0, min_frames=2, max_frames=8)
        assert backend.used(odd[name]) == "pyav" and backend.fallbacks == 1


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("half", "moov atom not found"),
        ("header", "moov atom not found"),
        ("audio", "has no video stream"),
        ("folder", "is a directory, not a video file"),
        ("pipe", "is a named pipe, not a regular video file"),
        ("empty", "the file is empty"),
        ("missing", "no such file"),
    ],
)
def test_a_file_no_backend_reads_gets_one_plain_line(odd, name, cause, capfd):
    backend = select_backend(REGISTRY, "auto")
    with pytest.raises(VideoError) as e:
        read_video(backend, odd[name])
    message = str(e.value)
    assert message.startswith(f"{odd[name]}: not a readable video: {cause}") and "\n" not in message
    assert "Check failed" not in message and ".cc:" not in message and "Errno" not in message
    assert f"(tried {', '.join(m.name for m in backend.members)})" in message
    assert capfd.readouterr().err == ""  # FFmpeg's and decord's own log lines stay quiet


@pytest.mark.skipif(not HAS_DECORD, reason="decord prints its log lines itself")
def test_verbose_lets_the_libraries_log_lines_through(odd, capfd, monkeypatch):
    monkeypatch.setenv("VIDRL_VERBOSE", "1")
    with pytest.raises(VideoError):
        read_video(REGISTRY.get("decord")(), odd["half"])
    err = capfd.readouterr().err
    assert "moov atom not found" in err and "ERROR opening" in err


def test_data_check_names_every_bad_row_in_line_order(odd):
    rows = [
        {"id": name, "video": os.path.basename(odd[name]), "question": "q?", "answer": "a"}
        for name in ("half", "tiny", "folder")
    ]
    rows.insert(1, {"id": "no question", "video": "ok.mp4"})  # fails before decoding
    tmp_path = Path(odd["ok"]).parent  # the data set beside its videos
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    total, problems, _ = check_dataset(path, select_backend(REGISTRY, "auto"), fps=2.0, max_frames=8)
    assert total == 4 and [p.split(":")[1] for p in problems] == ["1", "2", "4"]  # line order; tiny is fine
    assert (
        "moov atom not found" in problems[0]
        and "question" in problems[1]
        and "is a directory, not a media file" in problems[2]
    )
    bad = tmp_path / "bad.jsonl"  # no usable row at all: still each row's reason, and the count
    bad.write_text(json.dumps(rows[1]) + "\n")
    expected = (1, ["bad.jsonl:1: required field 'question' is missing"], [])
    assert check_dataset(bad, select_backend(REGISTRY, "auto")) == expected


def test_a_named_backend_does_not_fall_back(odd):
    backend = select_backend(REGISTRY, "pyav")
    assert not isinstance(backend, Fallback)
    with pytest.raises(VideoError, match="pyav|PyAV"):
        read_video(backend, odd["half"])


def test_evaluation_counts_and_names_the_rows_it_leaves_out(tiny_model_dir, synth_data, tmp_path):
    """With ``on_bad_row: skip`` a held-out row whose video does not decode is left out of ``n``,
    counted (``skipped``, logged as ``eval/skipped``) and named with its reason in the answers."""
    from vidrl.engine.context import RunContext
    from vidrl.engine.evaluation import score_split

    rows = [json.loads(r) for r in synth_data.read_text().splitlines()[:3]]
    rows = [{**r, "video": str(synth_data.parent / r["video"])} for r in rows]  # absolute: root "/"
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    rows.insert(1, {**rows[0], "id": "broken", "video": str(tmp_path / "broken.mp4")})
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    where = {"train": str(data), "eval": str(data), "root": "/"}
    raw = {"model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
           "data": {**where, "on_bad_row": "skip", "max_frames": 2},
           "eval": {"max_new_tokens": 2}, "log": {"progress": False}}  # fmt: skip
    result, answers = score_split(RunContext(*vidrl.load_config(raw), tmp_path / "run"))
    assert result["n"] == 3 and result["skipped"] == 1
    (left_out,) = [a for a in answers if "skipped" in a]
    assert left_out["sample"] == "broken" and "not a readable video" in left_out["skipped"]


def test_pyav_seeks_to_far_frames_and_gets_the_same_pixels(odd, monkeypatch):
    """Frames more than SEEK_GAP apart are sought (keyframe, then forward): the same pixels as
    decoding every frame up to them, and as decord's random access."""
    from vidrl.plugins import video_backends

    path = _write(Path(odd["ok"]).parent / "long.mp4", 32, 32, frames=900, fps=30)  # 30 s
    pyav = REGISTRY.get("pyav")()
    sought = read_video(pyav, path, fps=0.5, min_frames=2, max_frames=16)  # frames ~60 apart: some seeks
    monkeypatch.setattr(video_backends, "SEEK_GAP", 40)
    sought_more = read_video(pyav, path, fps=0.5, min_frames=2, max_frames=16)
    monkeypatch.setattr(video_backends, "SEEK_GAP", 10**9)
    sequential = read_video(pyav, path, fps=0.5, min_frames=2, max_frames=16)
    assert sequential.indices.tolist() == sought_more.indices.tolist() and len(sequential.indices) == 14
    assert torch.equal(sought.pixels, sequential.pixels) and torch.equal(
        sought_more.pixels, sequential.pixels
    )
    if HAS_DECORD:
        decord = read_video(REGISTRY.get("decord")(), path, fps=0.5, min_frames=2, max_frames=16)
        assert torch.equal(decord.pixels, sequential.pixels)


def test_the_clip_cache_holds_frames_at_the_size_the_model_sees_within_its_bytes(odd):
    """A 640x480 clip is cached at the budget's largest size on the patch grid (not at its own),
    the cache stays within ``cache_mb``, and a frame more elongated than 200:1 is refused with
    its size (as a bad row: ``on_bad_row`` applies)."""
    from vidrl.config import DataConfig, VisionBudget
    from vidrl.data.datasets import load_dataset
    from vidrl.engine.feed import Clips
    from vidrl.models.inputs import Geometry

    d = Path(odd["ok"]).parent
    _write(d / "big.mp4", 640, 480, frames=20)
    _write(d / "thin.mp4", 2, 420, frames=4)  # 210:1
    rows = [
        {"id": n, "video": f"{n}.mp4", "question": "q?", "answer": "a"} for n in ("big", "ok", "tiny", "thin")
    ]
    (d / "cache.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset(d / "cache.jsonl")
    budget, geometry = VisionBudget(max_pixels=56 * 56), Geometry(factor=28, temporal=2)
    clips = Clips(ds, select_backend(REGISTRY, "auto"), DataConfig(budget=budget, cache_mb=1, max_frames=8))
    big = clips.get(ds.samples[0], geometry)
    fitted = geometry.resize(480, 640, budget.min_pixels, budget.max_pixels)
    assert tuple(big.pixels.shape[1:3]) == fitted == (28, 56)  # not 480x640
    for sample in ds.samples[1:3]:
        clip = clips.get(sample, geometry)
        h, w = clip.pixels.shape[1:3]
        assert h % 28 == w % 28 == 0 and budget.min_pixels <= h * w <= budget.max_pixels
    cached = sum(c.pixels.nbytes for c in clips._cache.values())
    assert cached == clips._bytes <= 2**20 and len(clips._cache) == 3
    with pytest.raises(VideoError, match="sample 'thin': .*frames of 2x420 px are more elongated than 200:1"):
        clips.get(ds.samples[3], geometry)
    small = Clips(ds, select_backend(REGISTRY, "auto"), DataConfig(budget=budget, cache_mb=0, max_frames=8))
    small.get(ds.samples[0], geometry)
    assert small._bytes == 0 and not small._cache  # a 0 MiB cache holds nothing


class Hangs(vidrl.VideoBackend):
    """Probes fine, then never finishes decoding (as a backend stuck inside a C call)."""

    name = "hangs"

    def probe(self, path):
        return vidrl.VideoInfo(num_frames=20, fps=10.0, width=56, height=56)

    def decode(self, path, indices):
        import threading

        threading.Event().wait()  # forever: only a daemon thread may be left like this


def test_a_decode_that_hangs_is_a_named_bad_row_after_the_timeout(odd):
    import time

    from vidrl.config import DataConfig
    from vidrl.data.datasets import load_dataset
    from vidrl.engine.feed import Clips
    from vidrl.models.inputs import Geometry

    ds = load_dataset([{"id": "stuck", "video": odd["ok"], "question": "q?", "answer": "a"}], root="/")
    clips = Clips(ds, Hangs(), DataConfig(decode_timeout=0.5))
    start = time.perf_counter()
    with pytest.raises(VideoError, match=r"sample 'stuck': .*ok.mp4: decoding took longer than 0.5 s"):
        clips.get(ds.samples[0], Geometry(factor=28, temporal=2))
    assert time.perf_counter() - start < 5


def test_a_variable_frame_rate_video_is_read_by_decoding_order(odd):
    """Alternating 50 and 16.7 fps stretches: PyAV decodes in order (no seeking by time) and frame i
    is the i-th one encoded (its colour says so), as decord reads it."""
    import fractions

    path = str(Path(odd["ok"]).parent / "vfr.mp4")
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.codec_context.time_base = "yuv420p", fractions.Fraction(1, 1000)
        pts = 0
        for i in range(120):
            image = np.zeros((32, 32, 3), np.uint8)
            image[..., 0], image[..., 2] = i, 128
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            pts += 20 if (i // 10) % 2 == 0 else 60
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = read_video(REGISTRY.get("pyav")(), path, fps=2.0, max_frames=8)
    colour = frames.pixels[:, 16, 16, 0].long()
    assert frames.indices.tolist() == [0, 17, 34, 51, 68, 85, 102, 119]
    assert (colour - frames.indices).abs().max() <= 3  # the frame encoded i-th (up to compression)
    if HAS_DECORD:
        assert torch.equal(
            read_video(REGISTRY.get("decord")(), path, fps=2.0, max_frames=8).pixels, frames.pixels
        )
