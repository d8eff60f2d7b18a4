"""Data sets: rows from JSONL, JSON, Parquet or any iterable of mappings (a Hugging Face
``datasets.Dataset`` included) into ``vidrl.Sample``.

Media paths resolve under the data set's root and may not leave it. A bad row is an error that
names the file, the line (or item) and the field; ``on_bad_row="skip"`` turns it into a counted,
logged skip instead. A row is never replaced by another.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

from vidrl.config.row_mapping import RowMapping
from vidrl.data.video import VideoError, read_video, within
from vidrl.errors import VidrlError
from vidrl.plugin.components import VideoBackend
from vidrl.types import Sample

log = logging.getLogger(__name__)
SAMPLE_FIELDS = {f.name for f in fields(Sample)}


class DataError(VidrlError):
    """A data-set row is malformed or its media cannot be used; the message says where."""


@dataclass
class Dataset:
    """Samples with where each came from (``origins[i]`` like ``data.jsonl:12``) and the skips."""

    samples: list[Sample]
    origins: list[str]
    root: Path
    skipped: list[str] = field(default_factory=list)

    def unknown_task_types(self) -> dict[str, int]:
        """Task types read that vidrl does not know (kept as ``free_form``): value → rows."""
        return dict(Counter(str(s.metadata["source_task_type"]) for s in self.samples
                            if "source_task_type" in s.metadata))  # fmt: skip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def path(self, media: str) -> Path:
        """Absolute path of a media file named by a sample (already checked to be under root)."""
        return self.root / media


def read_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(origin, row) pairs from a .jsonl, .json or .parquet file; origins are ``file:line``."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"data set {str(path)!r} does not exist")
    if suffix == ".jsonl":
        with path.open() as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path.name}:{i}", json.loads(line)
                    except json.JSONDecodeError as e:
                        yield f"{path.name}:{i}", DataError(f"{path.name}:{i}: invalid JSON: {e}")
    elif suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json data set must be a list of rows, got {type(data).__name__}")
        for i, row in enumerate(data):
            yield f"{path.name}[{i}]", row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path.name}:row {i}", row
    else:
        raise DataError(f"{path}: unknown data-set format {suffix!r}; valid: .jsonl, .json, .parquet")


def _media(value: Any, root: Path, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name!r}: expected a path string, got {value!r}")
    resolved = (root / value).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"field {name!r}: path {value!r} escapes the data-set root {str(root)!r}")
    if not resolved.exists():
        raise ValueError(f"field {name!r}: file {value!r} does not exist under {str(root)!r}")
    if not resolved.is_file():
        what = (
            "a directory"
            if resolved.is_dir()
            else "a named pipe"
            if resolved.is_fifo()
            else "not a regular file"
        )
        raise ValueError(f"field {name!r}: {value!r} is {what}, not a media file")
    return str(resolved.relative_to(root))


def _span(value: Any, duration: float | None, name: str = "span") -> tuple[float, float] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    )
    if not ok or not 0 <= value[0] < value[1] or (duration is not None and value[1] > duration + 1e-6):
        raise ValueError(
            f"field {name!r}: expected [start, end] with 0 <= start < end <= duration, got {value!r}"
        )
    return float(value[0]), float(value[1])


def to_sample(row: Any, origin: str, root: Path, mapping: RowMapping | None = None) -> Sample:
    """Validate one row (after ``mapping``: columns renamed, task types mapped); raise ValueError
    naming the field at fault. Unknown keys go to metadata."""
    if not isinstance(row, Mapping):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    row = (mapping or RowMapping()).apply(row)
    for key in ("question", "answer"):
        if key not in row:
            raise ValueError(f"required field {key!r} is missing")
    if not isinstance(row["question"], str) or not isinstance(row["answer"], (str, int, float)):
        raise ValueError(
            f"fields 'question' (str), 'answer' (str or number): got {row['question']!r}, {row['answer']!r}"
        )
    task = row.get("task_type", "free_form")
    duration = row.get("duration")
    if duration is not None and (not isinstance(duration, (int, float)) or duration <= 0):
        raise ValueError(f"field 'duration': expected a positive number of seconds, got {duration!r}")
    options = row.get("options") or ()
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise ValueError(f"field 'options': expected a list of strings, got {options!r}")
    video = row.get("video")
    images = row.get("images") or ()
    metadata = dict(row.get("metadata") or {})
    metadata.update({k: v for k, v in row.items() if k not in SAMPLE_FIELDS})
    return Sample(
        id=str(row.get("id") or origin),
        question=row["question"],
        answer=str(row["answer"]),
        task_type=task,
        video=None if video is None else _media(video, root, "video"),
        images=tuple(_media(p, root, f"images[{i}]") for i, p in enumerate(images)),
        options=tuple(options),
        span=_span(row.get("span"), duration),
        segment=_span(row.get("segment"), duration, "segment"),
        duration=None if duration is None else float(duration),
        metadata=metadata,
    )


def load_dataset(
    source: str | Path | Iterable[Mapping[str, Any]],
    root: str | Path | None = None,
    on_bad_row: Literal["error", "skip"] = "error",
    log_skips: bool = True,
    allow_empty: bool = False,
    mapping: RowMapping | None = None,
) -> Dataset:
    """Load a data set. ``source``: a .jsonl/.json/.parquet path (root defaults to its folder) or
    an iterable of row mappings such as a ``datasets.Dataset`` (root defaults to the cwd);
    ``mapping``: how a foreign data set's columns and task types map onto vidrl's."""
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        rows: Iterable[tuple[str, Any]] = read_rows(path)
        base = path.parent
    else:
        rows = ((f"row {i}", r) for i, r in enumerate(source))
        base = Path.cwd()
    ds = Dataset([], [], Path(root or base).resolve())
    for origin, row in rows:
        try:
            if isinstance(row, DataError):
                raise row
            ds.samples.append(to_sample(row, origin, ds.root, mapping))
            ds.origins.append(origin)
        except (ValueError, DataError) as e:
            msg = str(e) if isinstance(e, DataError) else f"{origin}: {e}"
            if on_bad_row == "error":
                raise DataError(msg) from None
            ds.skipped.append(msg)
            if log_skips:
                log.warning("skipped %s", msg)
    unknown = ds.unknown_task_types()
    if unknown and log_skips:
        counts = ", ".join(f"{k!r} ({n} rows)" for k, n in sorted(unknown.items()))
        log.warning("unknown task types kept as free_form (map them with data.task_types): %s", counts)
    if not ds.samples and not allow_empty:
        first = f"; the first: {ds.skipped[0]}" if ds.skipped else ""
        name = str(source) if isinstance(source, (str, Path)) else "of rows"
        raise DataError(f"data set {name} has no usable rows ({len(ds.skipped)} skipped{first})")
    return ds


class DataCheck(NamedTuple):
    """What ``check_dataset`` found: rows seen, problems (``origin: reason``, in line order) and
    notes that are not problems (task types vidrl does not know, loaded as ``free_form``)."""

    total: int
    problems: list[str]
    notes: list[str]


def check_dataset(
    source: str | Path, backend: VideoBackend, root: str | Path | None = None, decode_timeout: float = 300.0,
    mapping: RowMapping | None = None, **plan: Any,
) -> DataCheck:  # fmt: skip
    """Decode every row's media as training would (``plan_frames`` options in ``plan``; rows
    read through ``mapping``). Never raises for bad data."""
    try:
        ds = load_dataset(
            source, root, on_bad_row="skip", log_skips=False, allow_empty=True, mapping=mapping
        )  # reported below
    except DataError as e:  # the file itself (missing, unreadable)
        return DataCheck(0, [str(e)], [])
    problems = list(ds.skipped)
    for sample, origin in _progress(zip(ds.samples, ds.origins, strict=True), len(ds)):
        try:
            if sample.video is not None:
                path = str(ds.path(sample.video))
                within(decode_timeout, path, lambda path=path: read_video(backend, path, **plan))
            for image in sample.images:
                _check_image(ds.path(image))
        except (VideoError, ValueError) as e:
            problems.append(f"{origin}: {e}")
    unknown = sorted(ds.unknown_task_types().items())
    notes = [f"task type {k!r} is not vidrl's ({n} rows): loaded as free_form (map it: data.task_types)"
             for k, n in unknown]  # fmt: skip
    return DataCheck(len(ds) + len(ds.skipped), sorted(problems, key=_line_order), notes)


def _line_order(problem: str) -> tuple[int, str]:
    """Sort key of ``origin: reason`` problems: the origin's line (``file:12``, ``row 12``) first."""
    found = re.search(r"(\d+)\D*$", problem.split(": ", 1)[0])  # the origin's last number
    return (int(found.group(1)) if found else 1 << 62, problem)


def _check_image(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def _progress(it: Iterable[Any], total: int) -> Iterable[Any]:
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc="checking rows", unit="row", leave=False)
