"""vidrl: a plugin-based zoo of reinforcement-learning algorithms for video language models.

This module is the public API. Plugins (built-in ones included) import only from here and from
``vidrl.ops``.
"""

from vidrl import ops, text
from vidrl.augment import Augmented, AugmentInput
from vidrl.components import (
    KINDS,
    AdvantageEstimator,
    Augmenter,
    Component,
    ComponentKind,
    Judge,
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
from vidrl.data import Dataset, load_dataset
from vidrl.errors import ConfigError, PluginError, RegistryError, VidrlError
from vidrl.evaluate import grade
from vidrl.hookspecs import hookimpl
from vidrl.loop import StepLoop, TrainState
from vidrl.multiturn import ToolRunner, ToolSetup, TurnLimits, given_conversations, tool_prompt, tool_rollout
from vidrl.optim import OptimConfig
from vidrl.registry import Registry
from vidrl.report import JsonlLog
from vidrl.rollout import Generation, HFGenerate, RolloutBackend, Sampling, given_responses, sequence_logprobs
from vidrl.run import Policy, RunContext, algorithm_missing
from vidrl.session import PluginInfo, Session
from vidrl.tiny import tiny_causal_lm
from vidrl.tools import (
    TOOL_RESULTS,
    Observation,
    ToolCall,
    ToolContext,
    call_tool,
    check_arguments,
    parse_tool_call,
    tool_error,
    tool_schemas,
)
from vidrl.trainer import (
    Algorithm,
    Collective,
    Learner,
    StepOptions,
    accumulate,
    check_micro_batches,
    rl_step,
)
from vidrl.types import TASK_TYPES, Advantages, JudgeItem, Judgement, LossInputs, LossOutput, Sample
from vidrl.video import Frames, VideoError, VideoInfo, burn_timestamps, decode_frames, plan_frames, read_video

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AugmentInput",
    "Augmented",
    "TASK_TYPES",
    "Algorithm",
    "Collective",
    "Generation",
    "HFGenerate",
    "Learner",
    "OptimConfig",
    "Policy",
    "RolloutBackend",
    "RunContext",
    "Sampling",
    "StepLoop",
    "StepOptions",
    "TrainState",
    "accumulate",
    "check_micro_batches",
    "algorithm_missing",
    "given_responses",
    "rl_step",
    "sequence_logprobs",
    "tiny_causal_lm",
    "Dataset",
    "load_dataset",
    "JsonlLog",
    "grade",
    "Observation",
    "TOOL_RESULTS",
    "ToolCall",
    "ToolContext",
    "call_tool",
    "check_arguments",
    "parse_tool_call",
    "tool_error",
    "tool_schemas",
    "burn_timestamps",
    "decode_frames",
    "plan_frames",
    "ToolRunner",
    "ToolSetup",
    "TurnLimits",
    "given_conversations",
    "tool_prompt",
    "tool_rollout",
    "read_video",
    "AdvantageEstimator",
    "Advantages",
    "Augmenter",
    "Component",
    "ComponentKind",
    "ComponentSpec",
    "ConfigError",
    "Judge",
    "JudgeItem",
    "Judgement",
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
