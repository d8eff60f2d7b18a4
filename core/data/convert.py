"""Foreign data-set formats rewritten as vidrl rows (``vidrl data convert --from NAME IN OUT``):
Video-R1-260k, LLaVA-Video-178K, Video-MME, MVBench and Charades-STA, read with Hugging Face
``datasets`` (JSON, JSON lists, Parquet, text). Each format is a reader and a row converter in
``FORMATS``; a row that cannot be converted is reported with its reason, never guessed.

Media paths are written as the source gives them (``./`` dropped); point ``data.root`` at the
folder they are relative to. The source's own category (Video-MME's task type, MVBench's task)
is kept as ``category``, so evaluation reports accuracy per category. The formats' field names
come from their public descriptions (docs/data.md#foreign-formats).
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidrl.errors import VidrlError

LETTERS = "ABCDEFGH"
_LETTERED = re.compile(r"^\s*\(?([A-H])[.):]\s*(.*)$", re.S)  # "A. text", "(A) text", "A) text"
_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
Row = dict[str, Any]


class ConvertError(VidrlError):
    """A source file cannot be read as the named format."""


@dataclass(frozen=True)
class Format:
    """A foreign format: what it is, how its file is read (path → source rows) and how a source
    row becomes vidrl rows (row, its index, the options of ``convert_file`` → rows; ValueError
    names what is wrong)."""

    description: str
    read: Callable[[Path], Iterable[Mapping[str, Any]]]
    convert: Callable[[Mapping[str, Any], int, Mapping[str, Any]], list[Row]]


@dataclass
class Converted:
    """What ``convert_file`` did: rows written, and each source row it could not convert."""

    written: int = 0
    skipped: list[str] = field(default_factory=list)


def _unlettered(option: str) -> str:
    """``"A. red"`` → ``"red"`` (an option written without a letter stays as it is)."""
    m = _LETTERED.match(option)
    return m.group(2).strip() if m else option.strip()


def _media(path: str) -> str:
    return path[2:] if path.startswith("./") else path


def _hf(path: Path) -> Iterable[Mapping[str, Any]]:
    """The rows of a .json (list or lines), .jsonl or .parquet file, through ``datasets``, in memory."""
    try:
        import datasets
    except ImportError as e:
        raise ConvertError(
            "vidrl data convert reads files with Hugging Face datasets: pip install datasets"
        ) from e
    kind = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(path.suffix.lower())
    if kind is None:
        raise ConvertError(f"{path}: expected a .json, .jsonl or .parquet file")
    with tempfile.TemporaryDirectory() as cache:  # nothing left in the user's cache
        return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=cache).to_list()


def _lines(path: Path) -> Iterator[Mapping[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield {"text": line.rstrip("\r\n")}


VIDEO_R1_TASKS = {
    "multiple choice": "multiple_choice",
    "numerical": "numeric",
    "regression": "numeric",
    "OCR": "free_form",
    "free-form": "free_form",
}


def video_r1(row: Mapping[str, Any], i: int, opts: Mapping[str, Any]) -> list[Row]:
    """Video-R1-260k / COT-165k: ``problem``, ``solution`` "<answer>…</answer>", ``problem_type``,
    ``data_type`` image | video, ``path``, lettered ``options``, ``process`` (the SFT reasoning)."""
    kind, found = row["problem_type"], _TAG.search(row["solution"] or "")
    if found is None:
        raise ValueError(f"solution {row['solution']!r} has no <answer> block")
    media = _media(row["path"])
    out: Row = {
        "id": str(row["problem_id"]),
        "question": row["problem"],
        "answer": found.group(1),
        "task_type": VIDEO_R1_TASKS.get(kind, "free_form"),
        "problem_type": kind,
        "source": row.get("data_source") or "",
    }
    if kind == "multiple choice":
        out["options"] = [_unlettered(o) for o in row.get("options") or []]
    out.update({"video": media} if row["data_type"] == "video" else {"images": [media]})
    if row.get("process"):
        out["response"] = f"{row['process']}\n{row['solution']}"
    return [out]


def llava_video(row: Mapping[str, Any], i: int, opts: Mapping[str, Any]) -> list[Row]:
    """LLaVA-Video-178K: one row per (human, gpt) turn pair of ``conversations``; a question whose
    lines list lettered options is multiple choice (the letter the answer opens with), else free
    form; ``video`` relative to its bucket's folder."""
    turns, out = row["conversations"], []
    for k in range(0, len(turns) - 1, 2):
        asked, said = turns[k]["value"].replace("<image>", "").strip(), turns[k + 1]["value"].strip()
        lines = asked.split("\n")
        lettered = [n for n, line in enumerate(lines) if re.match(r"^[A-H]\.\s", line)]
        q: Row = {
            "id": f"{row['id']}-{k // 2}",
            "video": _media(row["video"]),
            "source": row.get("data_source", ""),
        }
        if len(lettered) >= 2:
            letter = re.match(r"^\(?([A-H])\b", said)
            if letter is None:
                raise ValueError(f"turn {k // 2}: a multiple-choice answer without a letter: {said!r}")
            question = "\n".join(lines[: lettered[0]]).strip()
            q.update(
                question=question,
                answer=letter.group(1),
                task_type="multiple_choice",
                options=[_unlettered(lines[n]) for n in lettered],
            )
        else:
            q.update(question=asked, answer=said, task_type="free_form")
        out.append(q)
    return out


def videomme(row: Mapping[str, Any], i: int, opts: Mapping[str, Any]) -> list[Row]:
    """Video-MME: lettered ``options``, a letter ``answer``, ``videoID`` the file stem; its
    ``task_type`` (e.g. "Counting Problem") becomes the category, its ``duration`` (short,
    medium, long) ``duration_bucket``."""
    return [
        {
            "id": row["question_id"],
            "question": row["question"],
            "answer": row["answer"].strip(),
            "task_type": "multiple_choice",
            "options": [_unlettered(o) for o in row["options"]],
            "video": f"{row['videoID']}.mp4",
            "category": row["task_type"],
            "duration_bucket": row["duration"],
            "domain": row.get("domain"),
            "sub_category": row.get("sub_category"),
        }
    ]


#: MVBench task → the folder of its videos under the benchmark's root (the official layout)
MVBENCH_FOLDERS = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_v1_480",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
    "counterfactual_inference": "clevrer/video_validation",
}


def mvbench(row: Mapping[str, Any], i: int, opts: Mapping[str, Any]) -> list[Row]:
    """MVBench (one file per task, named after it): bare ``candidates``, ``answer`` the right
    candidate's text; the task is the category, ``start``/``end`` (seconds) the segment shown."""
    task, candidates = opts["task"], list(row["candidates"])
    if row["answer"] not in candidates:
        raise ValueError(f"answer {row['answer']!r} is not one of the candidates {candidates}")
    folder = MVBENCH_FOLDERS.get(task)
    out: Row = {
        "id": f"{task}-{i}",
        "question": row["question"],
        "answer": LETTERS[candidates.index(row["answer"])],
        "task_type": "multiple_choice",
        "options": candidates,
        "category": task,
        "video": f"{folder}/{row['video']}" if folder else row["video"],
    }
    if row.get("start") is not None and row.get("end") is not None:
        out["segment"] = [float(row["start"]), float(row["end"])]
    return [out]


_CHARADES = re.compile(r"^(\S+)\s+([\d.]+)\s+([\d.]+)##(.+)$")


def charades_sta(row: Mapping[str, Any], i: int, opts: Mapping[str, Any]) -> list[Row]:
    """Charades-STA lines ``VIDEO START END##sentence``; the video's length (``--durations``, the
    Charades CSV) bounds the span, an end past it is cut to it (``end_cut`` in the row)."""
    m = _CHARADES.match(row["text"].strip())
    if m is None:
        raise ValueError(f"expected 'VIDEO START END##sentence', got {row['text']!r}")
    vid, start, end, sentence = m.group(1), float(m.group(2)), float(m.group(3)), m.group(4).strip()
    duration = opts.get("durations", {}).get(vid)
    out: Row = {
        "id": f"{vid}-{i}",
        "task_type": "temporal_grounding",
        "video": f"{vid}.mp4",
        "question": f'When does this happen: "{sentence}"? Give the start and end time in seconds.',
    }
    if duration is not None and end > duration:
        out["end_cut"], end = end, duration
    if not start < end:
        raise ValueError(f"the span {start}-{end} of {vid} is empty or reversed")
    out.update(answer=f"{start:g}-{end:g}", span=[start, end])
    if duration is not None:
        out["duration"] = duration
    return [out]


FORMATS: dict[str, Format] = {
    "video-r1": Format("Video-R1-260k / COT-165k (JSON list)", _hf, video_r1),
    "llava-video": Format("LLaVA-Video-178K conversations (JSON list)", _hf, llava_video),
    "videomme": Format("Video-MME (Parquet or JSON)", _hf, videomme),
    "mvbench": Format("MVBench, one task file (json/<task>.json)", _hf, mvbench),
    "charades-sta": Format("Charades-STA annotations (charades_sta_*.txt)", _lines, charades_sta),
}


def read_durations(path: Path) -> dict[str, float]:
    """Video id → length in seconds from a Charades CSV (columns ``id`` and ``length``)."""
    with path.open(newline="", encoding="utf-8") as f:
        return {r["id"]: float(r["length"]) for r in csv.DictReader(f) if r.get("length")}


def convert_file(name: str, source: Path, out: Path, durations: Path | None = None) -> Converted:
    """Rewrite ``source`` (format ``name``, see ``FORMATS``) as vidrl JSONL rows in ``out``; ids
    made unique (``#2``, ``#3`` after a repeat); each converter writes one of vidrl's task types."""
    if name not in FORMATS:
        raise ConvertError(f"unknown format {name!r}; valid: {', '.join(FORMATS)}")
    if not source.is_file():
        raise ConvertError(f"{source} does not exist")
    fmt, done, seen = FORMATS[name], Converted(), {}
    opts = {"task": source.stem, "durations": read_durations(durations) if durations else {}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for i, row in enumerate(fmt.read(source)):
            try:
                rows = fmt.convert(row, i, opts)
            except (KeyError, TypeError, ValueError) as e:
                what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
                done.skipped.append(f"{source.name} row {i}: {what}")
                continue
            for r in rows:
                n = seen[r["id"]] = seen.get(r["id"], 0) + 1
                r["id"] = r["id"] if n == 1 else f"{r['id']}#{n}"
                f.write(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n")
                done.written += 1
    return done
