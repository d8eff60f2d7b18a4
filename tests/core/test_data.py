"""Data sets: formats, root containment, row errors naming file/line/field, skip mode, check."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidrl import Session
from vidrl.config.row_mapping import RowMapping
from vidrl.data.datasets import DataError, check_dataset, load_dataset

ROW = {"id": "r1", "question": "How many?", "answer": 3, "task_type": "numeric", "video": "v.mp4",
       "duration": 5.0, "span": [1.0, 2.5], "source": "synthetic"}  # fmt: skip


@pytest.fixture
def root(tmp_path, synth_data):
    shutil.copy(synth_data.parent / "videos" / "00000.mp4", tmp_path / "v.mp4")
    return tmp_path


def test_jsonl_json_parquet_and_iterables_give_the_same_samples(root):
    (root / "d.jsonl").write_text(json.dumps(ROW) + "\n\n")
    (root / "d.json").write_text(json.dumps([ROW]))
    pq.write_table(pa.Table.from_pylist([ROW]), root / "d.parquet")
    loaded = [load_dataset(root / f"d.{ext}").samples[0] for ext in ("jsonl", "json", "parquet")]
    loaded.append(load_dataset([ROW], root=root).samples[0])
    assert all(s == loaded[0] for s in loaded)
    s = loaded[0]
    assert (s.answer, s.span, s.video, s.task_type) == ("3", (1.0, 2.5), "v.mp4", "numeric")
    assert s.metadata["source"] == "synthetic"  # unknown columns are kept as metadata


def test_hugging_face_dataset(root):
    import datasets

    hf = datasets.Dataset.from_list([ROW, {**ROW, "id": "r2", "span": None}])
    ds = load_dataset(hf, root=root)
    assert [s.id for s in ds.samples] == ["r1", "r2"] and ds.origins == ["row 0", "row 1"]
    assert ds.samples[0] == load_dataset([ROW], root=root).samples[0]


def test_origins_name_file_and_line(root):
    (root / "d.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "id": "r2"}) + "\n")
    assert load_dataset(root / "d.jsonl").origins == ["d.jsonl:1", "d.jsonl:2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"video": "../outside.mp4"},
            "d.jsonl:2: field 'video': path '../outside.mp4' escapes the data-set root",
        ),
        ({"video": "/etc/hostname"}, "d.jsonl:2: field 'video': path '/etc/hostname' escapes"),
        ({"video": "nope.mp4"}, "d.jsonl:2: field 'video': file 'nope.mp4' does not exist"),
        ({"span": [3.0, 1.0]}, "d.jsonl:2: field 'span': expected [start, end] with 0 <= start < end"),
        ({"span": [1.0, 9.0]}, "<= duration, got [1.0, 9.0]"),
        ({"answer": None}, "'answer' (str or number)"),
        ({"options": "ABCD"}, "field 'options': expected a list of strings"),
        ({"duration": -1}, "field 'duration': expected a positive number"),
    ],
)
def test_bad_rows_name_file_line_and_field(root, change, message):
    bad = {**ROW, **change}
    (root / "d.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(root / "d.jsonl")
    assert message in str(e.value)


def test_unknown_task_types_are_kept_in_metadata_not_rejected(root, caplog):
    (root / "d.jsonl").write_text(
        json.dumps(ROW) + "\n" + json.dumps({**ROW, "task_type": "Counting Problem"}) + "\n"
    )
    ds = load_dataset(root / "d.jsonl")
    assert (
        ds.samples[1].task_type == "free_form"
        and ds.samples[1].metadata["source_task_type"] == "Counting Problem"
    )
    assert ds.unknown_task_types() == {"Counting Problem": 1}
    assert (
        "unknown task types kept as free_form (map them with data.task_types): 'Counting Problem' (1 rows)"
        in caplog.text
    )


def test_a_column_and_task_type_mapping_reads_a_foreign_row(root):
    foreign = {"problem": "How many squares?", "solution": "3", "problem_type": "numerical", "path": "v.mp4",
               "data_source": "x"}  # fmt: skip
    mapping = RowMapping({"question": "problem", "answer": "solution", "task_type": "problem_type",
                          "video": "path"}, {"numerical": "numeric"})  # fmt: skip
    s = load_dataset([foreign], root=root, mapping=mapping).samples[0]
    assert (s.question, s.answer, s.task_type, s.video) == ("How many squares?", "3", "numeric", "v.mp4")
    assert s.metadata == {"data_source": "x"}  # the mapped columns are not kept twice
    with pytest.raises(ValueError, match=r"columns: unknown vidrl field\(s\) \['quest'\]"):
        RowMapping({"quest": "problem"})
    with pytest.raises(ValueError, match=r"task_types: \{'a': 'mcq'\} map to unknown task types"):
        RowMapping(task_types={"a": "mcq"})


def test_missing_field_and_invalid_json(root):
    (root / "d.jsonl").write_text('{"question": "q"}\n{oops\n')
    with pytest.raises(DataError, match="d.jsonl:1: required field 'answer' is missing"):
        load_dataset(root / "d.jsonl")
    (root / "d.jsonl").write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(DataError, match="d.jsonl:2: invalid JSON"):
        load_dataset(root / "d.jsonl")


def test_skip_mode_counts_and_never_substitutes(root):
    (root / "d.jsonl").write_text(
        "\n".join([json.dumps(ROW), "{oops", json.dumps({**ROW, "video": "x.mp4"})])
    )
    ds = load_dataset(root / "d.jsonl", on_bad_row="skip")
    assert len(ds) == 1 and ds.origins == ["d.jsonl:1"]
    assert len(ds.skipped) == 2 and ds.skipped[0].startswith("d.jsonl:2: invalid JSON")


def test_all_rows_bad_is_an_error(root):
    (root / "d.jsonl").write_text("{oops\n")
    with pytest.raises(
        DataError, match="has no usable rows \\(1 skipped; the first: d.jsonl:1: invalid JSON"
    ):
        load_dataset(root / "d.jsonl", on_bad_row="skip")


@pytest.mark.parametrize(
    ("name", "match"), [("d.csv", "unknown data-set format '.csv'"), ("no.jsonl", "does not exist")]
)
def test_bad_data_set_files(root, name, match):
    if name.endswith(".csv"):
        (root / name).write_text("a,b\n")
    with pytest.raises(DataError, match=match):
        load_dataset(root / name)


def test_check_reports_every_bad_row_without_raising(root):
    (root / "broken.mp4").write_bytes(b"not a video" * 50)
    rows = [ROW, {**ROW, "video": "broken.mp4"}, {"question": "q"}, {**ROW, "video": "../x.mp4"}]
    (root / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    backend = Session().load().create("video_backend", "pyav")
    total, problems, _ = check_dataset(root / "d.jsonl", backend)
    assert total == 4 and len(problems) == 3
    text = "\n".join(problems)
    assert "d.jsonl:2:" in text and "broken.mp4" in text
    assert "d.jsonl:3: required field 'answer'" in text and "d.jsonl:4: field 'video'" in text
