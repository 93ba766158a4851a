"""What every CLI command module shares: the error printer."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from tuneloop.errors import TuneloopError

F = TypeVar("F", bound=Callable[..., Any])

err = Console(stderr=True)


def friendly(command: F) -> F:
    """Print tuneloop errors as one clear line and exit 1, instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TuneloopError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
