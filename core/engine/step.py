"""One RL step, in named phases: roll out → score → ``on_rollouts_scored`` → advantages →
log-probs (old, reference) → update (micro-batches, accumulation, clipping, optimizer, schedule,
``num_iterations`` passes). Each phase is a short function; ``rl_step`` strings them together
and times them. Shapes: P prompts, G responses each, B = P·G, T response tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from vidrl.engine.augment import Prepare, Rollouts, augment_step, roll
from vidrl.engine.checks import call_loss, check_advantages, check_pairing
from vidrl.engine.dynamic_sampling import Draw, RollPrompts, refill
from vidrl.engine.rollout import decode, rollout, sequence_logprobs, trimmed_lengths
from vidrl.engine.scoring import score
from vidrl.engine.step_metrics import phase_times, step_summary
from vidrl.models.sharding import gathered
from vidrl.ops import masked_mean
from vidrl.plugin.components import AdvantageEstimator, Augmenter, Need, PolicyLoss, Reward, RolloutBackend
from vidrl.tools.report import tool_results
from vidrl.types import (
    Advantages,
    Frames,
    Generation,
    LossInputs,
    LossOutput,
    RolloutBatch,
    Sample,
    Sampling,
    Scores,
)


@dataclass(frozen=True)
class StepOptions:
    """``group_size``: G; ``micro_batch_size``: rollouts per forward/backward, at most;
    ``num_iterations``: optimizer steps on one rollout batch; ``max_grad_norm``: clipping (0 =
    none); ``max_tokens_per_micro_batch``: also at most this many token positions per forward
    (rows × their trimmed prompt + response length; 0: no limit; one row, or one group for a
    loss that needs whole groups, may exceed it); ``share_prefix``: the log-prob and update
    forwards compute each prompt once per micro-batch for the rows that repeat it
    (``vidrl.engine.shared_prefix``; exact); ``mask_truncated``: roll-outs cut off at the token
    budget keep their reward in their group's advantages but leave the loss (DAPO's overlong
    filtering, arXiv 2503.14476); ``dynamic_sampling``: groups whose rewards are all equal are
    dropped and the batch refilled from further prompts, at most ``max_draws`` prompt batches
    rolled out per step (DAPO, ``vidrl.engine.dynamic_sampling``)."""

    group_size: int = 8
    micro_batch_size: int = 8
    num_iterations: int = 1
    max_grad_norm: float = 1.0
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens_per_micro_batch: int = 0
    share_prefix: bool = True
    mask_truncated: bool = False
    dynamic_sampling: bool = False
    max_draws: int = 10


class Collective:
    """How a step sees the other data-parallel ranks: their number, and a sum, a maximum and a
    gather over all of them. This default is one process; the run supplies one backed by accelerate."""

    size = 1

    def sum(self, value: float) -> float:
        return value

    def max(self, value: float) -> float:
        return value

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        return [obj]


@dataclass
class Learner:
    """What an RL step updates and reads: the policy (DDP-wrapped when data-parallel) with its
    optimizer and schedule, the frozen reference (None when no component needs it), the roll-out
    backend, and the data-parallel ``world``."""

    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    backend: RolloutBackend
    eos_id: int
    reference: Any = None
    world: Collective = field(default_factory=Collective)


@dataclass
class Algorithm:
    """The components of an RL stage: estimator, loss, (name, weight, reward) triples, and the
    augmenters applied after the first roll-out of each step."""

    estimator: AdvantageEstimator
    loss: PolicyLoss
    rewards: Sequence[tuple[str, float, Reward]]
    augmenters: Sequence[Augmenter] = ()


@dataclass(frozen=True)
class StepRecord:
    """What a step produced, for the run's logs: texts [B], samples [B] (each prompt's
    sample repeated G times), scores, advantages and the generation itself; the prompts' clips
    [P] (None when augmenters or dynamic sampling changed the prompts trained on); for tool
    roll-outs also each row's ``vidrl.tools.multiturn.Conversation`` [B] (calls and observations)."""

    texts: list[str]
    samples: list[Sample]
    scores: Scores
    advantages: Advantages
    generation: Generation
    conversations: list[Any] | None = None
    clips: Sequence[Frames | None] | None = None


def old_from_update(opts: StepOptions) -> bool:
    """Whether the old log-probs are the update's own, detached: with one optimizer step per
    batch (``num_iterations`` 1) the policy has not moved when each micro-batch's forward runs,
    so they equal an extra forward's exactly, and that forward is not run."""
    return opts.num_iterations == 1


def logprobs(
    model: Any, gen: Generation, micro: int | Sequence[slice], temperature: float, share_prefix: bool = False
) -> torch.Tensor:
    """No-grad log-probs [B, T] in micro-batches of ``micro`` rows, or the given row ranges (old
    or reference policy)."""
    with torch.no_grad():
        parts = _parts(len(gen.response_ids), micro)
        return torch.cat([sequence_logprobs(model, gen, part, temperature, share_prefix) for part in parts])


def _parts(rows: int, micro: int | Sequence[slice]) -> Sequence[slice]:
    """``micro`` as row ranges: consecutive ranges of ``micro`` rows, or the ranges given."""
    return (
        [slice(i, min(rows, i + micro)) for i in range(0, rows, micro)] if isinstance(micro, int) else micro
    )


@dataclass(frozen=True)
class TrainBatch:
    """The tensors an update needs: the generation, advantages [B] or [B, T], old and reference
    log-probs [B, T] (each None when the loss does not declare its need; ``old_is_current``: the
    old ones are the update's own, detached), group ids [B], the whole step's response-token
    and rollout counts over all ranks (the loss normalisers), the micro-batches (``plan``) and
    their count over all ranks."""

    gen: Generation
    advantages: torch.Tensor
    old: torch.Tensor | None
    ref: torch.Tensor | None
    group_ids: torch.Tensor
    step_tokens: float
    step_sequences: float
    old_is_current: bool
    parts: Sequence[slice]
    micro_batches: int

    def loss_inputs(self, lp: torch.Tensor, rows: slice, entropies: torch.Tensor | None = None) -> LossInputs:
        mask = self.gen.response_mask
        return LossInputs(
            lp,
            self.advantages[rows],
            mask[rows],
            self.group_ids[rows],
            step_tokens=self.step_tokens,  # the whole step's counts: accumulation- and rank-invariant
            step_sequences=self.step_sequences,
            old_logprobs=lp.detach() if self.old_is_current else _rows(self.old, rows),
            ref_logprobs=_rows(self.ref, rows),
            step_micro_batches=self.micro_batches,
            entropies=entropies,
        )


def _rows(x: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    return None if x is None else x[rows]


def micro_batches(gen: Generation, micro: int, max_tokens: int = 0, multiple: int = 1) -> list[slice]:
    """Consecutive row ranges of ``gen`` covering it, each a multiple of ``multiple`` rows (whole
    groups; ``micro`` must be one too), at most ``micro`` rows and, with ``max_tokens``, at most
    that many token positions (rows × the longest trimmed prompt + response among them,
    ``vidrl.engine.rollout.trimmed_lengths``) unless ``multiple`` rows alone exceed it."""
    if micro < 1 or multiple < 1 or micro % multiple:
        raise ValueError(
            f"micro-batches of {micro} rows in multiples of {multiple}: need a positive multiple"
        )
    rows, parts, start = len(gen.response_ids), [], 0
    while start < rows:
        stop = min(rows, start + micro)
        while max_tokens and stop - start > multiple and _tokens(gen, slice(start, stop)) > max_tokens:
            stop -= multiple
        parts.append(slice(start, stop))
        start = stop
    return parts


def _tokens(gen: Generation, rows: slice) -> int:
    prompt, response = trimmed_lengths(gen, rows)
    return (rows.stop - rows.start) * (prompt + response)


def accumulate(
    learner: Learner, rows: int, micro: int | Sequence[slice], max_grad_norm: float,
    loss_fn: Callable[[slice], LossOutput],
) -> dict[str, float]:  # fmt: skip
    """One optimizer step over ``rows`` rows in micro-batches of ``micro`` rows (or the given
    row ranges, ``micro_batches``): ``loss_fn(rows)`` returns each micro-batch's share of the step
    loss (normalised by whole-step counts over all ranks); it is scaled by the number of ranks,
    because data-parallel gradient synchronisation averages over them. Then clipping
    (``max_grad_norm`` 0: none), the optimizer and the schedule. Returns the summed loss,
    metrics weighted by each micro-batch's share of rows, grad_norm."""
    learner.optimizer.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    for part in _parts(rows, micro):
        out = loss_fn(part)
        (out.loss * learner.world.size).backward()
        share = (part.stop - part.start) / rows
        _add(sums, {"loss": float(out.loss.detach()), **{k: v * share for k, v in out.metrics.items()}})
    params = [p for p in learner.model.parameters() if p.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf"))
    sums["grad_norm"] = float(
        norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    )  # FSDP2: a DTensor
    learner.optimizer.step()
    if learner.scheduler is not None:
        learner.scheduler.step()
    return sums


def update(learner: Learner, algo: Algorithm, batch: TrainBatch, opts: StepOptions) -> dict[str, float]:
    """``num_iterations`` optimizer steps over the batch (metrics averaged over them; among them
    ``entropy``, the policy's mean entropy over the trained tokens, from the same forwards)."""

    wanted = Need.ENTROPY in algo.loss.needs()

    def loss_fn(rows: slice) -> LossOutput:
        temp, gen = opts.sampling.temperature, batch.gen
        lp, ent = sequence_logprobs(learner.model, gen, rows, temp, opts.share_prefix, entropy=True)
        out = call_loss(algo.loss, batch.loss_inputs(lp, rows, ent if wanted else None))
        return replace(out, metrics={**out.metrics, "entropy": masked_mean(ent, gen.response_mask[rows])})

    sums: dict[str, float] = {}
    for _ in range(opts.num_iterations):
        rows = len(batch.gen.response_ids)
        _add(sums, accumulate(learner, rows, batch.parts, opts.max_grad_norm, loss_fn))
    return {k: v / opts.num_iterations for k, v in sums.items()}


def plan(gen: Generation, opts: StepOptions, needs: set[Need], world: Collective) -> list[slice]:
    """The step's micro-batches (``micro_batches``; whole groups for a loss that needs them), as
    many on every rank: data parallelism pairs each rank's forwards and backwards with the
    others' (a rank with fewer splits its largest parts; every rank has the same rows)."""
    multiple = opts.group_size if Need.WHOLE_GROUPS in needs else 1
    parts = micro_batches(gen, opts.micro_batch_size, opts.max_tokens_per_micro_batch, multiple)
    wanted = int(world.max(len(parts))) if opts.max_tokens_per_micro_batch else len(parts)
    while len(parts) < wanted:
        i = max(range(len(parts)), key=lambda k: parts[k].stop - parts[k].start)
        p = parts[i]
        cut = p.start + (p.stop - p.start) // (2 * multiple) * multiple
        parts[i : i + 1] = [slice(p.start, cut), slice(cut, p.stop)]
    return parts


def _add(into: dict[str, float], values: dict[str, float]) -> None:
    for k, v in values.items():
        into[k] = into.get(k, 0.0) + v


def check_micro_batches(algo: Algorithm, opts: StepOptions) -> None:
    """A loss that needs whole groups gets micro-batches that are whole multiples of G."""
    if Need.WHOLE_GROUPS in algo.loss.needs() and opts.micro_batch_size % opts.group_size:
        raise ValueError(
            f"loss {algo.loss.name!r} normalises over each group: micro_batch_size "
            f"({opts.micro_batch_size}) must be a multiple of group_size ({opts.group_size})"
        )


#: ``roller(prompt_batch, samples, g, sampling)`` → (generation, conversations): multi-turn roll-outs
Roller = Callable[[Any, Sequence[Sample], int, Sampling], tuple[Generation, list[Any]]]


class Phases:
    """Times the named phases of a step (``with phases("rollout"): ...``); a subclass may
    measure more around each phase (the step benchmark records peak memory)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def truncated_rows(gen: Generation, eos_id: int) -> torch.Tensor:
    """[B] bool: the response ended without an end-of-turn token (cut off at the token budget)."""
    return ~((gen.response_ids == eos_id) & gen.response_mask.bool()).any(1)


def _without_truncated(gen: Generation, eos_id: int) -> Generation:
    """``gen`` with the rows cut off at the token budget masked out of the loss entirely."""
    keep = (~truncated_rows(gen, eos_id)).to(gen.response_mask.dtype)[:, None]
    return replace(gen, response_mask=gen.response_mask * keep)


def _truncated_share(gen: Generation, eos_id: int) -> dict[str, float]:
    return {"truncated/masked_frac": float(truncated_rows(gen, eos_id).float().mean())}


def rollout_batch(used: Rollouts, group_ids: torch.Tensor, g: int, eos_id: int) -> RolloutBatch:
    """The frozen view of a step's scored roll-outs that ``on_rollouts_scored`` receives."""
    ids, mask = used.gen.response_ids, used.gen.response_mask
    truncated = truncated_rows(used.gen, eos_id)
    return RolloutBatch(
        tuple(used.texts), tuple(used.samples), used.scores, group_ids, g, ids, mask, truncated
    )


def rl_step(
    learner: Learner,
    algo: Algorithm,
    tokenizer: Any,
    prompt_batch: dict[str, Any],
    samples: Sequence[Sample],
    opts: StepOptions,
    hook: Any = None,
    state: Any = None,
    phases: Phases | None = None,
    clips: Sequence[Frames | None] | None = None,
    prepare: Prepare | None = None,
    roller: Roller | None = None,
    draw: Draw | None = None,
) -> tuple[dict[str, float], StepRecord]:
    """One RL step on a prompt batch of P samples, in the phases rollout, score (rewards,
    ``on_rollouts_scored``, advantages), augment (only with augmenters: they need the samples'
    ``clips`` and ``prepare(samples, clips)`` → prompt batch), logprob (old and reference) and
    update. With ``roller`` (multi-turn tool roll-outs, ``vidrl.tools.multiturn``), roll-outs come from
    it, rewards read the policy's turns only and each roll-out's sample carries its calls as
    ``vidrl.ToolResults``. With ``opts.dynamic_sampling``, a refill phase rolls out further
    prompt batches from ``draw()`` (``vidrl.engine.dynamic_sampling``). Returns (metrics,
    record); metrics include ``time/<phase>`` and ``time/step``."""
    phases = phases or Phases()
    check_micro_batches(algo, opts)
    _check_combination(algo, opts, roller, draw, prepare, clips)
    g = opts.group_size
    # a sharded policy is gathered once for all of a phase's generate calls (their number may differ by rank)
    with phases("rollout"), gathered(learner.model):
        gen, texts, rep, convs, extra = _roll_out(learner, tokenizer, prompt_batch, samples, opts, roller)
    with phases("score"):
        used = Rollouts(gen, texts, rep, score(algo.rewards, texts, rep, gen.response_mask.sum(1).tolist()))
    if opts.dynamic_sampling:
        with phases("refill"), gathered(learner.model):
            roll_prompts = _roll_prompts(learner, algo, tokenizer, opts)
            used, refilled = refill(used, clips, draw, roll_prompts, prepare, g, opts.max_draws,
                                    tokenizer.pad_token_id)  # fmt: skip
        extra = {**extra, **refilled}
    if algo.augmenters:
        with phases("augment"), gathered(learner.model):
            used, extra = _augment(learner, algo, tokenizer, used, clips, prepare, opts)
    gen, scores = used.gen, used.scores
    group_ids = torch.arange(len(samples)).repeat_interleave(g)
    with phases("score"):
        if hook is not None:
            hook.on_rollouts_scored(batch=rollout_batch(used, group_ids, g, learner.eos_id), state=state)
        b, t = gen.response_ids.shape
        raw = algo.estimator(scores.for_estimator(), group_ids)
        adv = check_advantages(algo.estimator, raw, b, t, len(samples))
        check_pairing(algo.estimator, algo.loss, adv)
    extra = {**extra, "truncated/frac": float(truncated_rows(gen, learner.eos_id).float().mean())}
    if opts.mask_truncated:  # out of the loss and its normalisers, after their advantages
        extra = {**extra, **_truncated_share(gen, learner.eos_id)}
        gen = _without_truncated(gen, learner.eos_id)
    parts = plan(gen, opts, algo.loss.needs(), learner.world)
    old, ref, current = _logprob_phase(learner, algo.loss.needs(), gen, opts, parts, phases)
    with phases("update"):
        tokens, seqs = (learner.world.sum(float(x)) for x in (gen.response_mask.sum(), len(used.texts)))
        dev = gen.response_ids.device  # rewards and advantages are computed on the CPU
        adv_, groups = adv.advantages.to(dev), group_ids.to(dev)
        batch = TrainBatch(gen, adv_, old, ref, groups, tokens, seqs, current, parts,
                           len(parts) * learner.world.size)  # fmt: skip
        metrics = update(learner, algo, batch, opts)
        learner.backend.sync()  # a backend with its own copy of the weights takes the update
    lr = learner.optimizer.param_groups[0]["lr"]
    metrics.update({**extra, **step_summary(used, adv, g, lr), **phase_times(phases.seconds)})
    drawn = [s.id for s in used.samples[::g]] == [s.id for s in samples]  # not replaced nor refilled
    record = StepRecord(used.texts, used.samples, scores, adv, gen, convs, clips if drawn else None)
    return metrics, record


def _logprob_phase(
    learner: Learner, needs: set[Need], gen: Generation, opts: StepOptions, parts: list[slice], phases: Phases
) -> tuple[torch.Tensor | None, torch.Tensor | None, bool]:
    """(old, reference log-probs [B, T] or None, whether the old ones come from the update): the
    forwards the loss needs, over the micro-batches ``parts``, in the ``logprob`` phase; a step
    that needs none has no such phase."""
    current = Need.OLD_LOGPROBS in needs and old_from_update(opts)
    old = ref = None
    want_old, want_ref = Need.OLD_LOGPROBS in needs and not current, Need.REFERENCE_MODEL in needs
    if want_old or want_ref:
        temp = opts.sampling.temperature
        with phases("logprob"):
            old = logprobs(learner.model, gen, parts, temp, opts.share_prefix) if want_old else None
            ref = logprobs(learner.reference, gen, parts, temp, opts.share_prefix) if want_ref else None
    return old, ref, current


def _roll_out(
    learner: Learner, tokenizer: Any, batch: dict[str, Any], samples: Sequence[Sample], opts: StepOptions,
    roller: Roller | None,
) -> tuple[Generation, list[str], list[Sample], list[Any] | None, dict[str, float]]:  # fmt: skip
    """The step's roll-out of G per prompt: (generation, texts [B], samples [B], the tool
    conversations [B] or None, tool metrics)."""
    g, sampling = opts.group_size, opts.sampling
    if roller is None:
        gen = rollout(learner.backend, batch, g, sampling, learner.eos_id, tokenizer.pad_token_id)
        return gen, decode(tokenizer, gen), [s for s in samples for _ in range(g)], None, {}
    gen, convs = roller(batch, samples, g, sampling)
    texts, rep, metrics = tool_results(convs, samples, g)
    return gen, texts, rep, convs, metrics


def _augment(
    learner: Learner, algo: Algorithm, tokenizer: Any, first: Rollouts, clips: Sequence[Frames | None] | None,
    prepare: Prepare | None, opts: StepOptions,
) -> tuple[Rollouts, dict[str, float]]:  # fmt: skip
    """The augment phase: the roll-outs to train on, and the augmenters' metrics."""
    if clips is None or prepare is None:
        raise ValueError("augmenters need the step's clips and a prepare(samples, clips) function")
    roll_prompts = _roll_prompts(learner, algo, tokenizer, opts)
    return augment_step(algo.augmenters, first, clips, prepare, roll_prompts, opts.group_size,
                        tokenizer.pad_token_id)  # fmt: skip


def _roll_prompts(learner: Learner, algo: Algorithm, tokenizer: Any, opts: StepOptions) -> RollPrompts:
    """``roll_prompts(prompt_batch, samples)``: G roll-outs of further prompts, decoded and scored."""

    def roll_prompts(batch: Any, ss: Sequence[Sample]) -> Rollouts:
        g, sampling = opts.group_size, opts.sampling
        return roll(learner.backend, tokenizer, algo.rewards, batch, ss, g, sampling, learner.eos_id)

    return roll_prompts


def _check_combination(
    algo: Algorithm, opts: StepOptions, roller: Roller | None, draw: Draw | None, prepare: Prepare | None,
    clips: Sequence[Frames | None] | None,
) -> None:  # fmt: skip
    """Refuse the features a step cannot combine yet, and dynamic sampling without its inputs."""
    if roller is not None and algo.augmenters:
        raise ValueError("augmenters and tool roll-outs cannot be combined yet: drop one of them")
    if not opts.dynamic_sampling:
        return
    if roller is not None or algo.augmenters:
        raise ValueError(
            "dynamic sampling cannot be combined with tool roll-outs or augmenters yet: drop one"
        )
    if draw is None or prepare is None or clips is None:
        raise ValueError("dynamic sampling needs the step's clips, prepare(samples, clips) and draw()")
