"""The built-in training stages: ``sft`` (supervised warm-up on reference responses) and ``rl``
(the RL step of the engine with the configured estimator, loss and rewards)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import vidrl


@dataclass(frozen=True)
class _Steps:
    steps: int = 100
    micro_batch_size: int = 8

    def _check_counts(self, **counts: int) -> None:
        counts = {"steps": self.steps, "micro_batch_size": self.micro_batch_size, **counts}
        bad = {k: v for k, v in counts.items() if v < 1}
        if bad:
            raise ValueError(f"must be >= 1: {bad}")


class SFT(vidrl.Stage):
    """Teacher-forced token-mean NLL of reference responses: a row's ``response`` column when it
    has one, else ``template`` filled with the row's answer. With the run's ``tools``, each tool
    call of a response is run and its observation inserted (not trained on) before the next turn
    (``vidrl.given_conversations``)."""

    name = "sft"

    @dataclass(frozen=True)
    class Config(_Steps):
        batch_size: int = 8
        template: str = "<answer>{answer}</answer>"
        optim: vidrl.OptimConfig = vidrl.OptimConfig(lr=1e-4)

        def __post_init__(self) -> None:
            self._check_counts(batch_size=self.batch_size)
            if "{answer}" not in self.template:
                raise ValueError(f"template must contain {{answer}}, got {self.template!r}")

    def target(self, sample: vidrl.Sample) -> str:
        response = sample.metadata.get("response")
        return response if isinstance(response, str) else self.config.template.format(answer=sample.answer)

    def run(self, context: vidrl.StageContext) -> None:
        c, policy = self.config, context.policy()
        feed = context.feed("train", c.batch_size)
        opt, sched = context.optimizer(c.optim, c.steps)
        learner = vidrl.Learner(policy.model, opt, sched, None, policy.eos_id, world=context.world)
        tools = context.tool_runner("train")
        loop = context.loop(c.steps, opt, sched, feed)
        for _ in loop:
            samples, batch = feed.next()
            targets = [self.target(s) for s in samples]
            gen = (
                tools.teacher_forced(batch, samples, targets)
                if tools
                else vidrl.given_responses(batch, policy.tokenizer, targets)
            )
            tokens = context.world.sum(float(gen.response_mask.sum()))

            def nll(rows: slice, gen: vidrl.Generation = gen, tokens: float = tokens) -> vidrl.LossOutput:
                lp = vidrl.sequence_logprobs(policy.model, gen, rows)
                return vidrl.LossOutput(-(lp * gen.response_mask[rows]).sum() / tokens, {})

            metrics = vidrl.accumulate(learner, len(samples), c.micro_batch_size, c.optim.max_grad_norm, nll)
            metrics["lr"] = opt.param_groups[0]["lr"]
            loop.end_step(metrics)


class RL(vidrl.Stage):
    """``steps`` RL steps of ``prompts_per_step`` prompts (per process) × ``group_size`` sampled
    responses, with the run's ``advantage``, ``loss`` and ``rewards`` (and, when the run lists
    ``tools``, multi-turn tool roll-outs within the run's ``turns`` budgets). The reference model
    (the policy at this stage's start) loads only when the loss needs it."""

    name = "rl"

    @dataclass(frozen=True)
    class Config(_Steps):
        prompts_per_step: int = 4
        group_size: int = 8
        num_iterations: int = 1
        temperature: float = 1.0
        top_p: float = 1.0
        max_new_tokens: int = 64
        optim: vidrl.OptimConfig = vidrl.OptimConfig(lr=1e-5)
        #: the data split its prompts come from ("train", or one a loop stage added)
        split: str = "train"
        #: at most this many token positions per forward, besides micro_batch_size rows (0: no limit)
        max_tokens_per_micro_batch: int = 0
        #: compute each prompt once per micro-batch in the log-prob and update forwards (exact)
        share_prefix: bool = True
        #: roll-outs cut off at max_new_tokens leave the loss (DAPO's overlong filtering)
        mask_truncated: bool = False
        #: drop groups whose rewards are all equal and refill from further prompts (DAPO)
        dynamic_sampling: bool = False
        #: at most this many prompt batches rolled out per step with dynamic_sampling
        max_draws: int = 10

        def __post_init__(self) -> None:
            self._check_counts(
                prompts_per_step=self.prompts_per_step, group_size=self.group_size,
                num_iterations=self.num_iterations, max_new_tokens=self.max_new_tokens,
                max_draws=self.max_draws,
            )  # fmt: skip
            if self.temperature <= 0:
                raise ValueError(f"temperature must be > 0 (log-probs divide by it), got {self.temperature}")
            if self.max_tokens_per_micro_batch < 0:
                raise ValueError(f"max_tokens_per_micro_batch must be >= 0 (0: no limit), got "
                                 f"{self.max_tokens_per_micro_batch}")  # fmt: skip

    def check(self, config: vidrl.RunConfig, session: vidrl.Session | None = None) -> list[str]:
        out = [f"{key}: required by the rl stage" for key in vidrl.algorithm_missing(config)]
        if config.augmenters and config.tools:
            out.append("augmenters and tools cannot be combined yet (augmenters rewrite prompts that tool "
                       "roll-outs would also need to re-run): drop one of them")  # fmt: skip
        c = self.config
        if c.dynamic_sampling and (config.augmenters or config.tools):
            out.append("dynamic_sampling cannot be combined with augmenters or tools yet: drop one of them")
        if c.dynamic_sampling and c.group_size < 2:
            out.append(f"dynamic_sampling needs group_size >= 2 (a group of {c.group_size} never has two "
                       "rewards to differ): every step would roll out max_draws batches")  # fmt: skip
        if session is not None and config.loss is not None:
            loss = session.create("loss", config.loss.name, config.loss.options)
            if vidrl.Need.WHOLE_GROUPS in loss.needs() and c.micro_batch_size % c.group_size:
                out.append(f"micro_batch_size ({c.micro_batch_size}) must be a multiple of group_size "
                           f"({c.group_size}): loss {loss.name!r} normalises over each group")  # fmt: skip
        return out

    def run(self, context: vidrl.StageContext) -> None:
        c, policy, algo = self.config, context.policy(), context.algorithm()
        sampling = vidrl.Sampling(c.temperature, c.top_p, c.max_new_tokens)
        opts = vidrl.StepOptions(c.group_size, c.micro_batch_size, c.num_iterations, c.optim.max_grad_norm,
                                 sampling, c.max_tokens_per_micro_batch, c.share_prefix,
                                 c.mask_truncated, c.dynamic_sampling, c.max_draws)  # fmt: skip
        vidrl.check_micro_batches(algo, opts)  # fail before the reference model loads
        ref = context.reference() if vidrl.Need.REFERENCE_MODEL in algo.loss.needs() else None
        opt, sched = context.optimizer(c.optim, c.steps * c.num_iterations)
        learner = vidrl.Learner(policy.model, opt, sched, context.rollout_backend(), policy.eos_id, ref,
                                context.world)  # fmt: skip
        tools = context.tool_runner(c.split)
        roller = (
            None if tools is None else functools.partial(tools.rollout, limits=context.config.turns.limits)
        )
        feed = context.feed(c.split, c.prompts_per_step)
        loop = context.loop(c.steps, opt, sched, feed)
        for _ in loop:
            samples, clips = feed.draw()
            metrics, record = vidrl.rl_step(
                learner, algo, policy.tokenizer, feed.batch(samples, clips), samples, opts,
                hook=context.hook, state=context.state, clips=clips, prepare=feed.batch, roller=roller,
                draw=feed.draw,
            )  # fmt: skip
            loop.end_step(metrics, record)


@vidrl.hookimpl
def register_stages(register):
    register(SFT)
    register(RL)
