"""``vidrl.testing``: what a plugin's tests need, shipped with vidrl (no pytest required).

- builders of the inputs components receive: ``loss_inputs``, ``augment_input``,
  ``tool_context``, ``sample``, ``frames``, ``group_ids``, and ``tiny_session`` (a strict
  session with your in-process plugins);
- conformance suites per kind (``check_advantage_estimator``, ``check_policy_loss``,
  ``check_reward``, ``check_augmenter``, ``check_tool``, ``check_judge``, ``check_stage``) and
  ``check_component(session, kind, name)``, which picks the suite: the rules every component of
  a kind must follow, on odd shapes and degenerate inputs.

``vidrl check-plugin NAME`` runs the suites over every component an installed plugin registers.
"""

from vidrl.testing.builders import (
    augment_input,
    frames,
    group_ids,
    loss_inputs,
    sample,
    tiny_session,
    tool_context,
)
from vidrl.testing.conformance import (
    SUITES,
    check_advantage_estimator,
    check_augmenter,
    check_component,
    check_judge,
    check_policy_loss,
    check_reward,
    check_stage,
    check_tool,
)

__all__ = [
    "SUITES",
    "augment_input",
    "check_advantage_estimator",
    "check_augmenter",
    "check_component",
    "check_judge",
    "check_policy_loss",
    "check_reward",
    "check_stage",
    "check_tool",
    "frames",
    "group_ids",
    "loss_inputs",
    "sample",
    "tiny_session",
    "tool_context",
]
