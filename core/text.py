"""Parsing model output. Model output is untrusted: these functions never evaluate it, never
raise on it, and return None when a value cannot be read unambiguously."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_SPAN = re.compile(
    rf"\[?\s*({_NUMBER.pattern})\s*(?:s|sec|seconds)?\s*(?:-|–|to|,)\s*({_NUMBER.pattern})\s*(?:s|sec|seconds)?\s*\]?"
)


def extract_answer(response: str) -> str | None:
    """The text inside the one ``<answer>…</answer>`` block, stripped; None if there is no block,
    more than one, or an unclosed tag."""
    blocks = _ANSWER.findall(response)
    if len(blocks) != 1 or response.count("<answer>") != 1 or response.count("</answer>") != 1:
        return None
    return blocks[0].strip()


def parse_number(text: str | None) -> float | None:
    """The single number in ``text`` (``"about 3.5 squares"`` → 3.5); None if none or several."""
    if text is None:
        return None
    found = _NUMBER.findall(text.replace(",", ""))
    if len(found) != 1:
        return None
    try:
        return float(found[0])
    except ValueError:
        return None


def parse_choice(text: str | None, num_options: int = 4) -> str | None:
    """The one option letter (A, B, ...; ``num_options`` of them) standing alone in ``text``;
    None if there is none or several different ones."""
    valid = "ABCDEFGH"[: max(1, min(num_options, 8))]
    found = set(re.findall(rf"\b([{valid}])\b", text or ""))
    return found.pop() if len(found) == 1 else None


#: what a benchmark-style answer may say before its letter ("The best answer is B.")
_LEAD = re.compile(
    r"^\s*(?:the\s+(?:best|correct|right)\s+(?:answer|option)\s+is|the\s+answer\s+is|answer\s*:|option)\s*:?\s*",
    re.I,
)


def parse_letter(text: str | None, num_options: int = 4) -> str | None:
    """The option letter of a reply written the benchmark way, without tags: the letter it opens
    with (``"B"``, ``"(B) red"``, ``"B. red"``, after ``"The best answer is"``), else the one
    option letter standing alone in it (``parse_choice``); None if neither."""
    if text is None:
        return None
    valid = "ABCDEFGH"[: max(1, min(num_options, 8))]
    rest = _LEAD.sub("", text.strip())
    # "(B) ...", "B. ...", "B: ...", "B" alone; not "A man ..." (an article is no answer)
    m = re.match(rf"\(([{valid}])\)|([{valid}])(?:[.:,)]|$)", rest)
    return (m.group(1) or m.group(2)) if m else parse_choice(rest, num_options)


def parse_span(text: str | None) -> tuple[float, float] | None:
    """A time span written ``1.5-3``, ``[1.5, 3.0]``, ``1.5 to 3 seconds``; None if absent or not
    increasing (a reversed span is not silently swapped)."""
    if text is None:
        return None
    m = _SPAN.search(text)
    if m is None:
        return None
    start, end = float(m.group(1)), float(m.group(2))
    return (start, end) if start < end else None


def remove_span(text: str) -> str:
    """``text`` without its time span (for grounded QA, whose answer holds both)."""
    return _SPAN.sub(" ", text, count=1)


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: for exact-match comparisons."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def temporal_iou(pred: tuple[float, float] | None, gt: tuple[float, float]) -> float:
    """max(0, min(e_p, e_g) − max(s_p, s_g)) / (max(e_p, e_g) − min(s_p, s_g)); 0 if unparsed."""
    if pred is None:
        return 0.0
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    union = max(pred[1], gt[1]) - min(pred[0], gt[0])
    return inter / union if union > 0 else 0.0
