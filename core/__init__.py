"""vidrl: a plugin-based zoo of reinforcement-learning algorithms for video language models.

This module is the public API. Plugins (built-in ones included) import only from here and from
``vidrl.ops``.
"""

from vidrl import ops, text
from vidrl.components import (
    KINDS,
    AdvantageEstimator,
    Augmenter,
    Component,
    ComponentKind,
    Kernel,
    Need,
    NoOptions,
    PolicyLoss,
    Reward,
    Stage,
    Tool,
    VideoBackend,
)
from vidrl.config import ComponentSpec, PluginsConfig, RewardSpec, RunConfig, load_config
from vidrl.errors import ConfigError, PluginError, RegistryError, VidrlError
from vidrl.hookspecs import hookimpl
from vidrl.registry import Registry
from vidrl.session import PluginInfo, Session
from vidrl.types import Advantages, LossInputs, LossOutput, Sample
from vidrl.video import Frames, VideoError, VideoInfo

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AdvantageEstimator",
    "Advantages",
    "Augmenter",
    "Component",
    "ComponentKind",
    "ComponentSpec",
    "ConfigError",
    "Kernel",
    "LossInputs",
    "LossOutput",
    "Need",
    "NoOptions",
    "PluginError",
    "PluginInfo",
    "PluginsConfig",
    "PolicyLoss",
    "Registry",
    "RegistryError",
    "Reward",
    "RewardSpec",
    "RunConfig",
    "Sample",
    "Session",
    "Stage",
    "Tool",
    "VideoBackend",
    "VideoError",
    "VideoInfo",
    "Frames",
    "VidrlError",
    "__version__",
    "hookimpl",
    "load_config",
    "ops",
    "text",
]
