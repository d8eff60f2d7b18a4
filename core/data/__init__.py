"""Data: data sets and their rows (``datasets``), video probing and decoding (``video``) and the
synthetic video tasks (``synth``)."""
