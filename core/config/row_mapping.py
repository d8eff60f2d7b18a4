"""How a foreign data set's rows map onto vidrl's ``Sample`` fields: renamed columns and mapped
task types (the run config's ``data.columns`` and ``data.task_types``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from vidrl.types import TASK_TYPES, Sample

#: the fields a column may be mapped to
MAPPABLE = frozenset(f.name for f in fields(Sample)) - {"extras", "metadata"}


@dataclass(frozen=True)
class RowMapping:
    """How a foreign data set's rows map onto vidrl's fields: ``columns`` (vidrl field → the
    row's column, e.g. ``{"question": "problem"}``) and ``task_types`` (a row's task-type value →
    one of ``TASK_TYPES``, e.g. ``{"Counting Problem": "multiple_choice"}``). A task type that is
    neither mapped nor known is kept as ``metadata["source_task_type"]``, and the row becomes
    ``free_form``."""

    columns: Mapping[str, str] = field(default_factory=dict)
    task_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(set(self.columns) - MAPPABLE)
        if bad:
            raise ValueError(f"columns: unknown vidrl field(s) {bad}; valid: {', '.join(sorted(MAPPABLE))}")
        wrong = {k: v for k, v in self.task_types.items() if v not in TASK_TYPES}
        if wrong:
            raise ValueError(f"task_types: {wrong} map to unknown task types; valid: {', '.join(TASK_TYPES)}")

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row`` with its mapped columns renamed to vidrl's fields and its task type mapped."""
        taken = {col for col in self.columns.values() if col in row}
        out = {k: v for k, v in row.items() if k not in taken}
        out.update({name: row[col] for name, col in self.columns.items() if col in row})
        task = out.get("task_type")
        if isinstance(task, str) and task in self.task_types:
            out["task_type"] = self.task_types[task]
        elif task is not None and task not in TASK_TYPES:
            out["source_task_type"], out["task_type"] = task, "free_form"
        return out
