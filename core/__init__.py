"""vidrl: a plugin-based zoo of reinforcement-learning algorithms for video language models.

This module is the public API. Plugins (built-in ones included) import only from here and from
``vidrl.ops``.
"""

from vidrl import ops, text
from vidrl.config import ComponentSpec, PluginsConfig, RewardSpec, RunConfig, check_stage, load_config
from vidrl.data.datasets import Dataset, load_dataset
from vidrl.data.video import VideoError, burn_timestamps, decode_frames, plan_frames, read_video
from vidrl.engine.context import RunContext, algorithm_missing
from vidrl.engine.evaluation import grade
from vidrl.engine.loop import StepLoop
from vidrl.engine.optim import OptimConfig
from vidrl.engine.report import JsonlLog
from vidrl.engine.rollout import given_responses, sequence_logprobs
from vidrl.engine.stage_context import StageContext
from vidrl.engine.step import (
    Algorithm,
    Collective,
    Learner,
    StepOptions,
    accumulate,
    check_micro_batches,
    rl_step,
)
from vidrl.errors import ComponentError, ConfigError, PluginError, RegistryError, VidrlError
from vidrl.models.generate import HFGenerate
from vidrl.models.policy import Policy
from vidrl.models.tiny import tiny_causal_lm
from vidrl.plugin.components import (
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
    RolloutBackend,
    Stage,
    Tool,
    VideoBackend,
)
from vidrl.plugin.hookspecs import hookimpl
from vidrl.plugin.registry import Registry
from vidrl.plugin.session import PluginInfo, PluginWarning, Session
from vidrl.tools.calls import (
    call_tool,
    check_arguments,
    parse_tool_call,
    tool_error,
    tool_schemas,
)
from vidrl.tools.multiturn import (
    ToolRunner,
    ToolSetup,
    TurnLimits,
    given_conversations,
    tool_prompt,
    tool_rollout,
)
from vidrl.types import (
    TASK_TYPES,
    Advantages,
    Augmentation,
    Augmented,
    AugmentInput,
    Frames,
    Generation,
    ImagePixels,
    JudgeItem,
    Judgement,
    LossInputs,
    LossOutput,
    Observation,
    RolloutBatch,
    RolloutRequest,
    Sample,
    Sampling,
    Scores,
    ToolCall,
    ToolContext,
    ToolResults,
    TrainState,
    VideoInfo,
)

__version__ = "0.1.0"

__all__ = [
    "check_stage",
    "StageContext",
    "ComponentError",
    "Augmentation",
    "RolloutBatch",
    "Scores",
    "ImagePixels",
    "ToolResults",
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
    "RolloutRequest",
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
    "PluginWarning",
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


def __getattr__(name: str) -> object:
    """Deprecated names, still served with a warning."""
    if name == "TOOL_RESULTS":
        import warnings

        from vidrl.tools.calls import TOOL_RESULTS

        warnings.warn(
            "vidrl.TOOL_RESULTS is deprecated: read sample.extra(vidrl.ToolResults) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return TOOL_RESULTS
    raise AttributeError(f"module 'vidrl' has no attribute {name!r}")
