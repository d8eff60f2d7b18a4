"""Judges of reasoning/answer consistency (VerIPO's consistency check, arXiv:2505.19000;
docs/algorithms.md, 'VerIPO — specification').

``causal_lm``: any causal LM that transformers loads (``AutoModelForCausalLM``), prompted with the
question, the response's reasoning and its answer, and asked to answer Consistent or
Inconsistent; greedy, batched (left padding). The first word of its output decides; anything
else is unparseable and counts as Inconsistent.

``answer_in_reasoning``: a rule, not a model: consistent when the reasoning states the final
answer (normalised, as whole words). A cheap baseline for templated reasoning ("I count 4
squares"), and what the CPU examples use, where a random-weight LM judge can only be unparseable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

import vidrl

TEMPLATE = (
    "Question: {question}\nReasoning: {reasoning}\nFinal answer: {answer}\n"
    "Does the reasoning support the final answer? Reply with one word: Consistent or Inconsistent."
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_verdict(output: str) -> tuple[bool, bool]:
    """(consistent, parsed) from a judge's output: its first word, case and punctuation aside,
    must be ``consistent`` or ``inconsistent``; anything else is (False, False)."""
    words = re.findall(r"[a-z]+", output.lower())
    first = words[0] if words else ""
    if first in ("consistent", "inconsistent"):
        return first == "consistent", True
    return False, False


class CausalLMJudge(vidrl.Judge):
    """Options: ``model`` (a local model directory, or ``tiny``: a random-weight tiny Qwen2 for
    tests and examples, seeded by ``seed``), ``template`` (with {question}, {reasoning},
    {answer}), ``batch_size``, ``max_new_tokens``, ``dtype``, ``device`` (``auto``: CUDA when
    available)."""

    name = "causal_lm"

    @dataclass(frozen=True)
    class Config:
        model: str
        template: str = TEMPLATE
        batch_size: int = 16
        max_new_tokens: int = 8
        dtype: str = "float32"
        device: str = "auto"
        seed: int = 0

        def __post_init__(self) -> None:
            if not self.model:
                raise ValueError("model: a model directory (or 'tiny') is required")
            missing = [k for k in ("{question}", "{reasoning}", "{answer}") if k not in self.template]
            if missing:
                raise ValueError(f"template lacks {missing}")
            if self.batch_size < 1 or self.max_new_tokens < 1:
                raise ValueError(
                    f"batch_size, max_new_tokens must be >= 1: {self.batch_size}, {self.max_new_tokens}"
                )
            if self.dtype not in DTYPES:
                raise ValueError(f"dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> tuple[Any, Any]:
        """The model (eval mode, on its device) and its tokenizer (left padding), loaded once."""
        if self._model is None:
            c = self.config
            if c.model == "tiny":
                model, tok = vidrl.tiny_causal_lm(c.seed)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                model = AutoModelForCausalLM.from_pretrained(c.model, dtype=DTYPES[c.dtype])
                tok = AutoTokenizer.from_pretrained(c.model)
            device = c.device if c.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            tok.padding_side = "left"
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            self._model, self._tokenizer = model.to(device=device, dtype=DTYPES[c.dtype]).eval(), tok
        return self._model, self._tokenizer

    def close(self) -> None:
        self._model = self._tokenizer = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def prompt(self, item: vidrl.JudgeItem, tokenizer: Any) -> str:
        text = self.config.template.format(
            question=item.question, reasoning=item.reasoning, answer=item.answer
        )
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return text

    def __call__(self, items: Sequence[vidrl.JudgeItem]) -> list[vidrl.Judgement]:
        model, tok = self.load()
        out: list[vidrl.Judgement] = []
        for i in range(0, len(items), self.config.batch_size):
            prompts = [self.prompt(item, tok) for item in items[i : i + self.config.batch_size]]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                ids = model.generate(
                    **enc, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                )  # fmt: skip
            for row in ids[:, enc["input_ids"].shape[1] :]:
                text = tok.decode(row, skip_special_tokens=True)
                consistent, parsed = parse_verdict(text)
                out.append(vidrl.Judgement(consistent, text, parsed))
        return out


class AnswerInReasoning(vidrl.Judge):
    """Consistent when the normalised answer occurs, as whole words, in the normalised
    reasoning; an empty answer or reasoning is Inconsistent. Its output says which rule fired."""

    name = "answer_in_reasoning"

    def __call__(self, items: Sequence[vidrl.JudgeItem]) -> list[vidrl.Judgement]:
        out = []
        for item in items:
            answer, reasoning = (vidrl.text.normalize(x) for x in (item.answer, item.reasoning))
            ok = bool(answer) and f" {answer} " in f" {reasoning} "
            out.append(vidrl.Judgement(ok, "Consistent" if ok else "Inconsistent", True))
        return out


@vidrl.hookimpl
def register_judges(register):
    register(CausalLMJudge)
    register(AnswerInReasoning)
