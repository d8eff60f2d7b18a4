"""Foreign formats → vidrl rows: each fixture (tests/fixtures/formats/, written from the formats'
public descriptions) converts, the rows load as vidrl samples with their media where the source
says, and rows that cannot be converted are reported with their reason."""

import json
from pathlib import Path

import pytest

from vidrl.cli import main
from vidrl.data.convert import FORMATS, ConvertError, convert_file
from vidrl.data.datasets import load_dataset

FIXTURES = Path(__file__).parents[1] / "fixtures" / "formats"


def _converted(tmp_path, name, source, **kw):
    out = tmp_path / f"{name}.jsonl"
    done = convert_file(name, FIXTURES / source, out, **kw)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    for r in rows:  # placeholder media where the rows say, so that the loader can check the paths
        for media in [r.get("video"), *r.get("images", [])]:
            if media:
                (tmp_path / "media" / media).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / "media" / media).touch()
    ds = load_dataset(out, root=tmp_path / "media")
    return done, {s.id: s for s in ds.samples}


def test_video_r1(tmp_path):
    done, s = _converted(tmp_path, "video-r1", "video_r1.json")
    assert done.written == 5 and done.skipped == ["video_r1.json row 5: solution '3' has no <answer> block"]
    mc = s["2"]
    assert (mc.task_type, mc.answer, mc.options[0]) == (
        "multiple_choice",
        "A",
        "A YouTube subscription notification",
    )
    assert mc.video.startswith("LLaVA-Video-178K/liwei_youtube_videos/") and mc.metadata["response"].endswith(
        "</think>\n<answer>A</answer>"
    )
    assert s["1"].images == ("Math/CLEVR-Math/images/CLEVR_train_036427.png",) and s["1"].video is None
    assert [s[k].task_type for k in ("1", "3", "4", "5")] == ["numeric", "free_form", "free_form", "numeric"]
    assert (
        s["4"].metadata["problem_type"] == "OCR"
        and "source_task_type" not in s["4"].metadata
        and s["5"].answer == "2.5"
    )


def test_llava_video_turns_become_rows(tmp_path):
    done, s = _converted(tmp_path, "llava-video", "llava_video.json")
    assert done.written == 3 and not done.skipped
    first, second = s["101-zukEQgbWdsY-split_2-0"], s["101-zukEQgbWdsY-split_2-1"]
    assert first.question == "What is visible on the person's arm in the video?" and first.answer == "A"
    assert first.options == ("A tattoo", "A watch", "A bracelet", "A scar") and second.answer == "A"
    assert (
        second.options[0] == "Black" and first.video == "academic_source/youcook2/101/zukEQgbWdsY/split_2.mp4"
    )
    oe = s["RW587-0"]
    assert (
        oe.task_type == "free_form"
        and oe.answer.startswith("The person walks")
        and "<image>" not in oe.question
    )


def test_videomme_keeps_its_task_type_as_the_category(tmp_path):
    done, s = _converted(tmp_path, "videomme", "videomme.parquet")
    assert done.written == 3
    row = s["001-1"]
    assert (row.answer, row.options[2], row.video) == ("C", "Berries.", "fFjv93ACGo8.mp4")
    assert row.metadata["category"] == "Counting Problem" and row.metadata["duration_bucket"] == "short"
    assert row.duration is None  # "short" is a bucket, not seconds


def test_mvbench_letters_the_right_candidate(tmp_path):
    done, s = _converted(tmp_path, "mvbench", "mvbench/action_sequence.json")
    assert done.written == 2 and "answer 'Maybe.' is not one of the candidates" in done.skipped[0]
    row = s["action_sequence-1"]
    assert (row.answer, row.options[1]) == ("B", "Sat on the bed.") and row.metadata[
        "category"
    ] == "action_sequence"
    assert row.video == "star/Charades_v1_480/6H78U.mp4" and row.segment == (3.5, 18.25)


def test_charades_sta_spans_within_the_video(tmp_path):
    done, s = _converted(tmp_path, "charades-sta", "charades_sta_test.txt",
                         durations=FIXTURES / "Charades_v1_test.csv")  # fmt: skip
    assert done.written == 3 and len(done.skipped) == 2
    assert "the span 12.0-9.0 of AO8RW is empty or reversed" in done.skipped[0]
    assert "expected 'VIDEO START END##sentence'" in done.skipped[1]
    row = s["3MSZA-0"]
    assert (row.task_type, row.span, row.duration, row.answer) == (
        "temporal_grounding",
        (24.3, 30.4),
        30.96,
        "24.3-30.4",
    )
    assert "person turn a light on." in row.question
    cut = s["AO8RW-3"]
    assert cut.span == (2.5, 33.12) and cut.metadata["end_cut"] == 40.0


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ConvertError, match="unknown format 'msrvtt'; valid: video-r1, llava-video"):
        convert_file("msrvtt", FIXTURES / "video_r1.json", tmp_path / "o.jsonl")
    with pytest.raises(ConvertError, match="does not exist"):
        convert_file("videomme", tmp_path / "nope.parquet", tmp_path / "o.jsonl")
    assert set(FORMATS) == {"video-r1", "llava-video", "videomme", "mvbench", "charades-sta"}


def test_the_command_line(tmp_path, capsys):
    out = tmp_path / "vmme.jsonl"
    assert main(["data", "convert", "--from", "videomme", str(FIXTURES / "videomme.parquet"), str(out)]) == 0
    assert "wrote 3 rows" in capsys.readouterr().out and len(out.read_text().splitlines()) == 3
