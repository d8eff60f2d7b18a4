"""Run configuration: the typed schema of a run config (``schema``), loading and overrides, and the
conversion of plain YAML values into typed dataclasses with every error collected (``convert``)."""

from vidrl.config.schema import (
    CheckpointConfig,
    ComponentSpec,
    DataConfig,
    EvalConfig,
    LogConfig,
    ModelConfig,
    PluginsConfig,
    RewardSpec,
    RunConfig,
    SynthConfig,
    VisionBudget,
    apply_overrides,
    load_config,
    parse_yaml,
    read_yaml,
    to_plain,
)

__all__ = [
    "CheckpointConfig",
    "ComponentSpec",
    "DataConfig",
    "EvalConfig",
    "LogConfig",
    "ModelConfig",
    "PluginsConfig",
    "RewardSpec",
    "RunConfig",
    "SynthConfig",
    "VisionBudget",
    "apply_overrides",
    "load_config",
    "parse_yaml",
    "read_yaml",
    "to_plain",
]
