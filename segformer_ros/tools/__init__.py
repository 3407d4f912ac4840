"""User command-line tools: export, evaluation, engine build and backend self-check."""
