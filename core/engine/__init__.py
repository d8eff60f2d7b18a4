"""The training engine: the run context stages work with (``context``), one RL step (``step``),
the resumable step loop (``loop``), roll-outs and log-probs (``rollout``), reward scoring
(``scoring``), the augment phase (``augment``), held-out evaluation (``evaluation``), checkpoints
(``checkpoint``), the shuffled, resumable prompt feed of a stage (``feed``), optimizers
(``optim``), logs and plots (``report``) and ``train`` (``pipeline``)."""
