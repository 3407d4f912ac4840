"""Command-line tools: export, evaluation and backend self-check."""
