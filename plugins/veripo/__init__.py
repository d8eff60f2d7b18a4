"""VerIPO (arXiv:2505.19000; docs/algorithms.md, 'VerIPO — specification') as the loop stage
``veripo``: GRPO → rollout-aware verifier → DPO, iterated. ``verifier``: the four checks;
``pairs``: preference pairs from verified groups; ``loop``: the stage, its phases, files and prompt
pruning. Public API only."""

import vidrl

from .loop import VerIPO


@vidrl.hookimpl
def register_stages(register):
    register(VerIPO)
