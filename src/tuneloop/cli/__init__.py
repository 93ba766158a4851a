"""The ``tuneloop`` command line (Typer + Rich)."""
