"""The `digitlearn` command: one module per command, each a thin layer over the public functions
a notebook user calls (`train_run`, `resume_run`, `Predictor`, `Interpretation`...).

A command module has NAME, HELP, TORCH (whether it computes with torch, and so takes
--threads), `add_arguments(parser)` and `run(args) -> exit status`; `main` lists them. Building
the parser imports nothing heavy, and each command imports what it uses when it runs, so
`--help`, `recipes` and `datasets` answer at once.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
