"""A third-party vidrl plugin with one component of each kind a plugin usually adds: advantage
estimator, policy loss, reward, augmenter, tool, stage and judge (one module each).

Copy this directory, rename the package and the entry point, and replace the components you do
not need. ``vidrl check-plugin template`` runs vidrl's conformance suites over all of them.
"""

from __future__ import annotations

import vidrl

from .advantage import MedianBaseline
from .augmenter import ThinkHarder
from .judge import ShowsWork
from .loss import Reinforce
from .reward import Concise
from .stage import CheckpointEval
from .tool import VideoLength


@vidrl.hookimpl
def register_advantage_estimators(register):
    register(MedianBaseline)


@vidrl.hookimpl
def register_policy_losses(register):
    register(Reinforce)


@vidrl.hookimpl
def register_rewards(register):
    register(Concise)


@vidrl.hookimpl
def register_augmenters(register):
    register(ThinkHarder)


@vidrl.hookimpl
def register_tools(register):
    register(VideoLength)


@vidrl.hookimpl
def register_stages(register):
    register(CheckpointEval)


@vidrl.hookimpl
def register_judges(register):
    register(ShowsWork)
