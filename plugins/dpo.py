"""DPO (sigmoid preference loss) as the training stage ``dpo`` — the preference step of VerIPO's
loop (VerIPO, arXiv:2505.19000; docs/algorithms.md, 'VerIPO — specification'); the loss is DPO's
(arXiv:2305.18290).

Per pair: −log σ(β·[(log π_θ(y_c|x) − log π_ref(y_c|x)) − (log π_θ(y_r|x) − log π_ref(y_r|x))]),
sequence log-probs summed over the response tokens, averaged over the step's pairs; optionally
plus ``nll_weight`` × the token-mean NLL of the chosen responses. The reference is the policy at
the stage's start. Pairs come from the data set: each row's ``chosen`` and ``rejected`` columns
(kept in ``Sample.metadata``) answer its question and video.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

import vidrl


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO loss and implicit reward margin, from sequence log-probs [P] each:
    margin = β·((c − c_ref) − (r − r_ref)), loss = −log σ(margin) (stable: softplus(−margin))."""
    margin = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    return F.softplus(-margin), margin


def pair_texts(samples: list[vidrl.Sample]) -> tuple[list[str], list[str]]:
    """The chosen and rejected responses of each row; a row without both is an error naming it."""
    missing = [
        s.id for s in samples if not all(isinstance(s.metadata.get(k), str) for k in ("chosen", "rejected"))
    ]
    if missing:
        raise ValueError(
            f"dpo needs string columns 'chosen' and 'rejected' in every row; missing in {missing[:5]}"
        )
    return [s.metadata["chosen"] for s in samples], [s.metadata["rejected"] for s in samples]


class DPO(vidrl.Stage):
    """``steps`` optimizer steps of ``batch_size`` pairs (per process). Metrics: ``loss``,
    ``dpo/margin`` (mean implicit reward margin), ``dpo/accuracy`` (share of pairs with a
    positive margin), ``dpo/nll`` (chosen responses, token mean)."""

    name = "dpo"

    @dataclass(frozen=True)
    class Config:
        steps: int = 100
        batch_size: int = 8
        micro_batch_size: int = 8
        beta: float = 0.1
        nll_weight: float = 0.0
        optim: vidrl.OptimConfig = vidrl.OptimConfig(lr=5e-7)
        #: the data split its pairs come from ("train", or one a loop stage added)
        split: str = "train"

        def __post_init__(self) -> None:
            if (
                min(self.steps, self.batch_size, self.micro_batch_size) < 1
                or self.beta <= 0
                or self.nll_weight < 0
            ):
                raise ValueError(
                    f"need steps, batch_size, micro_batch_size >= 1, beta > 0, nll_weight >= 0; got {self}"
                )

    def run(self, context: vidrl.StageContext) -> None:
        c, policy = self.config, context.policy()
        ref = context.reference()
        feed = context.feed(c.split, c.batch_size)
        opt, sched = context.optimizer(c.optim, c.steps)
        learner = vidrl.Learner(policy.model, opt, sched, None, policy.eos_id, world=context.world)
        loop = context.loop(c.steps, opt, sched, feed)
        for _ in loop:
            samples, batch = feed.next()
            metrics = self.step(learner, policy, ref, samples, batch, context.world)
            metrics["lr"] = opt.param_groups[0]["lr"]
            loop.end_step(metrics)

    def step(self, learner, policy, ref, samples, batch, world) -> dict[str, float]:
        """One optimizer step on the pairs of ``samples`` (prompt ``batch`` prepared)."""
        c = self.config
        gens = [vidrl.given_responses(batch, policy.tokenizer, texts) for texts in pair_texts(samples)]
        with torch.no_grad():
            ref_lp = [vidrl.sequence_logprobs(ref, g).sum(-1) for g in gens]
        pairs, tokens = world.sum(float(len(samples))), world.sum(float(gens[0].response_mask.sum()))
        margins: list[torch.Tensor] = []

        def loss_fn(rows: slice) -> vidrl.LossOutput:
            lp_c, lp_r = (vidrl.sequence_logprobs(policy.model, g, rows) for g in gens)
            loss, margin = dpo_loss(lp_c.sum(-1), lp_r.sum(-1), ref_lp[0][rows], ref_lp[1][rows], c.beta)
            margins.append(margin.detach())
            nll = -(lp_c * gens[0].response_mask[rows]).sum() / tokens
            share = (rows.stop - rows.start) / len(samples)  # accumulate weights metrics by it
            return vidrl.LossOutput(
                loss.sum() / pairs + c.nll_weight * nll, {"dpo/nll": float(nll.detach()) / share}
            )

        metrics = vidrl.accumulate(learner, len(samples), c.micro_batch_size, c.optim.max_grad_norm, loss_fn)
        margin = torch.cat(margins)
        metrics.update(
            {"dpo/margin": float(margin.mean()), "dpo/accuracy": float((margin > 0).float().mean())}
        )
        return metrics


@vidrl.hookimpl
def register_stages(register):
    register(DPO)
