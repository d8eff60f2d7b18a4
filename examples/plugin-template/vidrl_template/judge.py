"""Judge ``shows_work``: reasoning that states the answer supports it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import vidrl


class ShowsWork(vidrl.Judge):
    """Consistent when the reasoning has at least ``min_words`` words and mentions the answer
    (case-insensitive); an empty answer is never supported."""

    name = "shows_work"

    @dataclass(frozen=True)
    class Config:
        min_words: int = 3

    def __call__(self, items: Sequence[vidrl.JudgeItem]) -> list[vidrl.Judgement]:
        out = []
        for item in items:
            answer = item.answer.strip().lower()
            ok = bool(answer) and len(item.reasoning.split()) >= self.config.min_words
            ok = ok and answer in item.reasoning.lower()
            out.append(vidrl.Judgement(ok, "Consistent" if ok else "Inconsistent", True))
        return out
