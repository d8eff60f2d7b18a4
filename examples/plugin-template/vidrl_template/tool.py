"""Tool ``video_length``: how long the video is, in the unit the model asks for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import vidrl

UNITS = {"seconds": 1.0, "minutes": 60.0}


class VideoLength(vidrl.Tool):
    """Tells the model the video's duration. Invalid values become an error observation the
    model sees (never an exception): the arguments are untrusted model output."""

    name = "video_length"
    description = "The length of the video, in seconds or minutes."
    parameters = {
        "type": "object",
        "properties": {"unit": {"type": "string", "description": "seconds or minutes"}},
        "required": ["unit"],
    }

    def __call__(self, arguments: Mapping[str, Any], context: vidrl.ToolContext) -> vidrl.Observation:
        unit = arguments["unit"]
        if unit not in UNITS:
            return vidrl.tool_error(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if context.duration is None:
            return vidrl.tool_error("this video's duration is unknown")
        return vidrl.Observation(f"The video lasts {context.duration / UNITS[unit]:.2f} {unit}.")
