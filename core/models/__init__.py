"""Models: loading the policy (``policy``), turning samples and clips into model inputs within a
vision budget (``inputs``), and the tiny random-weight models of tests and the demo (``tiny``)."""
