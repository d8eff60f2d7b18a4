"""An LLM as the reward: the reward ``llm_judge`` asks a model served behind any OpenAI-compatible
chat-completions endpoint (a vLLM or SGLang server, or a hosted API) whether each response
answers its question, and scores its reply. Requests run concurrently up to ``concurrency``, each
with a ``timeout`` and ``retries`` with backoff on connection errors, timeouts, 429 and 5xx;
the scorer's own per-reward timeout bounds the whole call (docs/engine.md#rewards).

The standard library's HTTP client does the requests, so the plugin needs no extra package.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import vidrl
from vidrl import text

TEMPLATE = (
    "You grade answers to questions about a video.\n"
    "Question: {question}\nReference answer: {answer}\nCandidate answer: {response}\n"
    "Does the candidate answer mean the same as the reference answer? Reply with yes or no."
)
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class JudgeRequestError(RuntimeError):
    """The endpoint refused a request, or did not answer; ``retry``: whether trying again may help."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


class LLMJudge(vidrl.Reward):
    """Scores each response by a chat model's verdict on ``template`` (filled with ``question``,
    ``answer``: the sample's truth, ``response``: the ``<answer>`` block, or the whole response
    when it has none). ``parse: yes_no``: 1 for a reply starting with "yes", 0 for "no"; ``number``:
    the first number of the reply, clipped to [0, 1]. A reply that parses as neither is "no
    opinion" (None). ``base_url``: the endpoint up to ``/v1``; ``model``: the served model's name;
    the API key is read from the environment variable ``api_key_env`` (never the config).
    ``tasks``: the task types it scores (all when omitted). A request that fails after
    ``retries`` retries stops the run (``on_error: raise``) or leaves that sample unscored
    (``none``)."""

    name = "llm_judge"

    @dataclass(frozen=True)
    class Config:
        base_url: str
        model: str
        template: str = TEMPLATE
        parse: Literal["yes_no", "number"] = "yes_no"
        tasks: tuple[str, ...] | None = None
        api_key_env: str = "OPENAI_API_KEY"
        max_tokens: int = 16
        temperature: float = 0.0
        timeout: float = 30.0
        retries: int = 2
        concurrency: int = 8
        on_error: Literal["raise", "none"] = "raise"

        def __post_init__(self) -> None:
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
            if self.timeout <= 0 or self.retries < 0 or self.concurrency < 1 or self.max_tokens < 1:
                raise ValueError(f"need timeout > 0, retries >= 0, concurrency >= 1, max_tokens >= 1: {self}")
            missing = [k for k in ("question", "response") if "{" + k + "}" not in self.template]
            if missing:
                raise ValueError(f"template must contain {{question}} and {{response}}; missing {missing}")

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        self.task_types = frozenset(self.config.tasks) if self.config.tasks is not None else None

    def __call__(self, responses: Sequence[str], samples: Sequence[vidrl.Sample]) -> list[float | None]:
        prompts = [self._prompt(r, s) for r, s in zip(responses, samples, strict=True)]
        replies = _map(self._ask, prompts, self.config.concurrency)
        return [None if reply is None else self._score(reply) for reply in replies]

    def _prompt(self, response: str, sample: vidrl.Sample) -> str:
        said = text.extract_answer(response) or response
        return self.config.template.format(question=sample.question, answer=sample.answer, response=said)

    def _score(self, reply: str) -> float | None:
        low = reply.strip().lower()
        if self.config.parse == "yes_no":
            return 1.0 if low.startswith("yes") else 0.0 if low.startswith("no") else None
        found = re.search(r"-?\d+(?:\.\d+)?", low)
        return None if found is None else min(1.0, max(0.0, float(found.group())))

    def _ask(self, prompt: str) -> str | None:
        """The reply to one prompt, after up to ``retries`` retries (None: failed, ``on_error: none``)."""
        c = self.config
        for attempt in range(c.retries + 1):
            try:
                return self._post(prompt)
            except JudgeRequestError as e:
                last = e
                if not e.retry:
                    break
                time.sleep(min(8.0, 0.25 * 2**attempt))
        if c.on_error == "none":
            return None
        raise last

    def _post(self, prompt: str) -> str:
        c = self.config
        body = {"model": c.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": c.max_tokens, "temperature": c.temperature}  # fmt: skip
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(c.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = c.base_url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=c.timeout) as reply:
                return json.loads(reply.read())["choices"][0]["message"]["content"] or ""
        except urllib.error.HTTPError as e:
            said = f"{url} answered HTTP {e.code}: {e.read()[:200]!r}"
            raise JudgeRequestError(said, e.code in RETRIED_STATUS) from e
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            said = f"{url} did not answer within {c.timeout:g} s or refused: {e}"
            raise JudgeRequestError(said, True) from e
        except (KeyError, IndexError, ValueError) as e:
            said = f"{url} answered something that is not a chat completion: {e}"
            raise JudgeRequestError(said, False) from e


def _map(fn: Callable[[str], str | None], items: Sequence[str], workers: int) -> list[str | None]:
    """``[fn(x) for x in items]`` on at most ``workers`` daemon threads: the first error stops the
    others from starting new items and is raised; a call the scorer gave up on (its timeout)
    never holds the process open at exit, as a thread pool's workers would."""
    results: list[str | None] = [None] * len(items)
    errors: list[BaseException] = []
    todo, lock = iter(range(len(items))), threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None or errors:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # raised by the caller below
                errors.append(e)
                return

    threads = [
        threading.Thread(target=work, daemon=True, name="llm-judge") for _ in range(min(workers, len(items)))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@vidrl.hookimpl
def register_rewards(register):
    register(LLMJudge)
