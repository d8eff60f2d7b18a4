"""Tool use: parsing and running a model's tool calls (``calls``) and multi-turn tool roll-outs
(``multiturn``)."""
