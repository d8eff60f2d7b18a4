"""Conformance suites: what every component of a kind must do, checked on fresh inputs (odd
group sizes, padded rows, degenerate groups, garbage text, bad tool arguments). A plugin's tests
run them over its components (``check_component(session, kind, name)``); vidrl runs them over
every built-in one; ``vidrl check-plugin NAME`` runs them over an installed plugin.

Each check raises ``AssertionError`` saying which rule failed and on what; it needs no pytest.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vidrl.engine.checks import check_advantages, check_augmented, check_loss_output
from vidrl.plugin.components import (
    KINDS,
    AdvantageEstimator,
    Augmenter,
    Component,
    Judge,
    Need,
    PolicyLoss,
    Reward,
    RolloutBackend,
    Stage,
    Tool,
    label,
    tool_schema_problem,
)
from vidrl.plugin.session import Session
from vidrl.testing import builders
from vidrl.types import TASK_TYPES, JudgeItem, Judgement, Observation, RolloutRequest, Sampling


def _check(ok: bool, component: Component, rule: str) -> None:
    if not ok:
        raise AssertionError(f"{label(component)}: {rule}")


def check_advantage_estimator(est: AdvantageEstimator, session: Session | None = None) -> None:
    """Shapes and finiteness on odd group sizes; a group of equal rewards gets 0 exactly and is
    flagged; an all-equal batch and singleton groups give no NaN."""
    ids = builders.group_ids((3, 1, 4, 2))
    rewards = torch.randn(len(ids), generator=torch.Generator().manual_seed(1))
    rewards[4:8] = 0.7  # group 2: all equal
    out = check_advantages(est, est(rewards, ids), len(ids), 1, 4)
    _check(
        bool((out.advantages[4:8] == 0).all()),
        est,
        "a group whose rewards are all equal must get advantage 0",
    )
    _check(
        bool(out.zero_std[2]) and not bool(out.zero_std[0]),
        est,
        "zero_std must flag exactly the equal groups",
    )
    same = est(torch.ones(6), builders.group_ids((3, 3)))
    check_advantages(est, same, 6, 1, 2)
    _check(bool((same.advantages == 0).all()), est, "an all-equal batch must give advantage 0 everywhere")


def _inputs_for(loss: PolicyLoss, **kw: Any) -> Any:
    needs = loss.needs()
    sizes = (3, 3) if Need.WHOLE_GROUPS in needs else (3, 2)
    return builders.loss_inputs(
        sizes,
        old=Need.OLD_LOGPROBS in needs,
        ref=Need.REFERENCE_MODEL in needs,
        entropy=Need.ENTROPY in needs,
        **kw,
    )


def check_policy_loss(loss: PolicyLoss, session: Session | None = None) -> None:
    """A finite scalar with a finite gradient on [B] and [B, T] advantages; no NaN when every token
    is masked; float metrics. Inputs hold only what the loss declares it needs."""
    for per_token in (False, True) if loss.token_advantages else (False,):
        inputs = _inputs_for(loss, per_token=per_token)
        out = check_loss_output(loss, loss(inputs))
        (grad,) = torch.autograd.grad(out.loss, inputs.logprobs)
        _check(bool(torch.isfinite(grad).all()), loss, f"non-finite gradient (per_token={per_token})")
        _check(float(grad[inputs.mask == 0].abs().sum()) == 0, loss, "padding tokens must get no gradient")
    masked = _inputs_for(loss, masked=True)
    value = loss(masked)
    _check(
        torch.isfinite(value.loss.detach()).all().item(),
        loss,
        "an all-masked micro-batch must give a finite loss",
    )


def check_reward(reward: Reward, session: Session | None = None) -> None:
    """One finite number (or None: "no opinion") per response, on every task type it scores, for
    good, empty and garbage responses (model output is untrusted); token counts passed to a
    reward that declares ``Need.RESPONSE_LENGTHS``."""
    tasks = sorted(reward.task_types) if reward.task_types is not None else list(TASK_TYPES)
    responses = ["<think>two</think><answer>B</answer>", "", "<answer>", "}{ \x00 <tool_call>nan</tool_call>"]
    for task in tasks:
        samples = [builders.sample(task, i) for i in range(len(responses))]
        lengths = {"lengths": [3, 0, 1, 40]} if Need.RESPONSE_LENGTHS in reward.needs() else {}
        values = list(reward(responses, samples, **lengths))
        _check(
            len(values) == len(responses),
            reward,
            f"returned {len(values)} scores for {len(responses)} responses",
        )
        bad = [v for v in values if v is not None and not _finite_number(v)]
        _check(not bad, reward, f"non-finite or non-numeric scores {bad} on {task}")


def _finite_number(value: Any) -> bool:
    """What the engine accepts as a score: anything ``float()`` takes, finite."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def check_augmenter(aug: Augmenter, session: Session | None = None) -> None:
    """Valid replacements (indices in range, ``vidrl.Augmented``) on two successive batches,
    float metrics, and a ``state_dict`` that round-trips into a fresh instance."""
    for seed in (0, 1):
        inp = builders.augment_input(seed=seed)
        check_augmented(aug, aug(inp), len(inp.samples))
        aug.observe(inp.samples, inp.group_means)
        bad = {k: v for k, v in aug.metrics().items() if not isinstance(v, (int, float))}
        _check(not bad, aug, f"metrics must be floats, got {bad}")
    state = aug.state_dict()
    other = type(aug)(aug.config)
    other.load_state_dict(copy.deepcopy(state))
    _check(_same(other.state_dict(), state), aug, "load_state_dict(state_dict()) must restore the same state")


def _same(a: Any, b: Any) -> bool:
    """Deep equality of state dicts: tensors and arrays element by element (NaN equal to NaN)."""
    arrays = (torch.Tensor, np.ndarray)
    if isinstance(a, arrays) or isinstance(b, arrays):
        if not (isinstance(a, arrays) and isinstance(b, arrays)):
            return False
        x, y = (v.detach().cpu() if torch.is_tensor(v) else torch.from_numpy(np.asarray(v)) for v in (a, b))
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        return torch.equal(x, y) or (
            x.is_floating_point() and torch.allclose(x, y, rtol=0, atol=0, equal_nan=True)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


#: a value of each JSON-schema type, as a model might send it: well-typed, not necessarily valid
PLAUSIBLE = {
    "number": 0.5,
    "integer": 0,
    "string": "",
    "boolean": False,
    "object": {},
    "array": [],
    "null": None,
}


def check_tool(tool: Tool, session: Session | None = None) -> None:
    """A valid schema; called directly (as ``call_tool`` does once the arguments fit the schema)
    with well-typed but arbitrary values, and with a context that has no video, it returns an
    ``Observation`` and raises nothing (invalid values are an ``ok=False`` observation)."""
    problem = tool_schema_problem(type(tool))
    _check(problem is None, tool, f"invalid schema: {problem}")
    props = dict(tool.parameters.get("properties", {}))
    arguments = {}
    for key, prop in props.items():
        kind = prop.get("type", "string")
        arguments[key] = PLAUSIBLE[kind[0] if isinstance(kind, list) else kind]
    for context in (builders.tool_context(), builders.tool_context(duration=None)):
        try:
            out = tool(arguments, context)
        except Exception as e:  # the contract: an error observation, never an exception
            raise AssertionError(f"{label(tool)}: raised {type(e).__name__}: {e} on {arguments}") from e
        _check(
            isinstance(out, Observation),
            tool,
            f"returned {type(out).__name__} for {arguments}; expected an Observation",
        )


def check_judge(judge: Judge, session: Session | None = None) -> None:
    """One ``Judgement`` per item, in order, also for an empty list."""
    items = [
        JudgeItem("How many?", "I count two.", "2"),
        JudgeItem("Which?", "", ""),
        JudgeItem("q", "x" * 500, "y"),
    ]
    out = judge(items)
    _check(
        len(out) == len(items) and all(isinstance(j, Judgement) for j in out), judge, "one Judgement per item"
    )
    _check(list(judge([])) == [], judge, "an empty list must give an empty list")


def check_stage(stage: Stage, session: Session | None = None) -> None:
    """``check`` of an empty config returns a list of strings (it runs before anything loads)."""
    from vidrl.config import RunConfig
    from vidrl.config import check_stage as run_check

    found = run_check(stage, RunConfig(), session or Session().load())
    ok = isinstance(found, list) and all(isinstance(e, str) for e in found)
    _check(ok, stage, f"check must return a list of str, got {found!r}")


def check_rollout_backend(backend: RolloutBackend, session: Session | None = None) -> None:
    """On the tiny Qwen2.5-VL (random weights) with two video prompts of different lengths (one
    left-padded) and G = 3, greedy and sampled: ``attach`` returns the backend; ids [P·G, T] long
    with T ≤ max_new_tokens; after a row's first stop id only padding; no media placeholder
    token; greedy, a prompt's G rows are equal (rows grouped by prompt); ``sync`` runs."""
    from vidrl.models.generate import MEDIA_TOKEN_KEYS

    model, request = _rollout_fixture()
    _check(backend.attach(model) is backend, backend, "attach(model) must return the backend")
    media = {i for k in MEDIA_TOKEN_KEYS if isinstance(i := getattr(model.config, k, None), int)}
    p, g, (stop,) = request.num_prompts, request.group_size, request.stop_ids
    for temperature in (0.0, 1.0):
        req = dataclasses.replace(request, sampling=Sampling(temperature, 1.0, 6))
        ids = backend.generate(req)
        _check(
            torch.is_tensor(ids) and ids.dtype == torch.long and ids.dim() == 2 and ids.shape[0] == p * g
            and 1 <= ids.shape[1] <= 6, backend, f"generate must return [{p * g}, T <= 6] long ids, got "
            f"{getattr(ids, 'dtype', type(ids))} {tuple(getattr(ids, 'shape', ()))}",
        )  # fmt: skip
        after = (ids == stop).long().cumsum(1) - (ids == stop).long() > 0  # past a row's first stop
        _check(
            bool((ids[after] == req.pad_id).all()), backend, "only pad_id may follow a row's first stop id"
        )
        _check(
            not set(ids.unique().tolist()) & media,
            backend,
            "a response must not hold media placeholder tokens",
        )
        if temperature == 0:
            same = all(torch.equal(ids[i], ids[i - i % g]) for i in range(p * g))
            _check(same, backend, "greedy: a prompt's G responses must be equal (rows p*G ... p*G + G - 1)")
    backend.sync()


def _rollout_fixture() -> tuple[Any, RolloutRequest]:
    """(tiny Qwen2.5-VL, a request of two video prompts of different lengths, G 3)."""
    import tempfile

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vidrl.models.inputs import prepare_batch
    from vidrl.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model("qwen2_5_vl", tmp)
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path).eval()
    samples = [builders.sample(i=0), builders.sample("numeric", i=1, question="How many squares cross the "
                                                     "frame from the left, and in which order?")]  # fmt: skip
    batch, fitted = prepare_batch(
        processor, samples, [builders.frames(4, seed=0), builders.frames(6, seed=1)]
    )
    tok = processor.tokenizer
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    return model, RolloutRequest(dict(batch), 3, Sampling(), (stop,), tok.pad_token_id, fitted)


#: kind → its conformance suite (kinds without one are checked at registration only)
SUITES: dict[str, Callable[[Any], None]] = {
    "advantage": check_advantage_estimator,
    "loss": check_policy_loss,
    "reward": check_reward,
    "augmenter": check_augmenter,
    "tool": check_tool,
    "judge": check_judge,
    "stage": check_stage,
    "rollout_backend": check_rollout_backend,
}


def check_component(session: Session, kind: str, name: str, config: Any = None) -> None:
    """Run ``kind``'s conformance suite on component ``name`` created with ``config`` (default
    options when None; a component with required options needs them). A component that cannot
    run here (``unavailable_reason``) is skipped."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    cls = session.registry(kind).get(name)
    if kind in SUITES and cls.available():
        torch.manual_seed(0)
        SUITES[kind](session.create(kind, name, config), session=session)
