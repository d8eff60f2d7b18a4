"""The built-in roll-out backend, registered like any other: ``hf_generate`` (Hugging Face
``model.generate``, each prompt prefilled once; ``vidrl.HFGenerate``)."""

from __future__ import annotations

import vidrl


@vidrl.hookimpl
def register_rollout_backends(register):
    register(vidrl.HFGenerate)
