"""Stage ``checkpoint_eval``: evaluate the policy on the held-out set, as a step of a run."""

from __future__ import annotations

from dataclasses import dataclass

import vidrl


class CheckpointEval(vidrl.Stage):
    """Runs held-out evaluation once (``eval-<label>.json``), e.g. between two training stages
    when ``eval.between_stages`` is off. Uses only the ``vidrl.StageContext`` it is given."""

    name = "checkpoint_eval"

    @dataclass(frozen=True)
    class Config:
        label: str = "checkpoint"

    def check(self, config: vidrl.RunConfig, session: vidrl.Session | None = None) -> list[str]:
        has_eval = config.data.eval is not None or config.data.train is None
        return [] if has_eval else ["data.eval: the checkpoint_eval stage needs a held-out set"]

    def run(self, context: vidrl.StageContext) -> None:
        context.evaluate(self.config.label)
