"""The `merit` command. Sub-commands are grouped by who uses them (see README)."""
from __future__ import annotations

import sys

import typer
from rich.console import Console

from backend.errors import MeritError

app = typer.Typer(
    name="merit",
    help="Merit: a data marketplace for collaborative machine learning on Ethereum.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show tracebacks on errors")) -> None:
    _state["debug"] = debug


def _register() -> None:
    """Attach sub-command groups. Each lives in its own module under backend/cli/."""
    import importlib
    import importlib.util

    for name in ("ipfs", "chain", "project", "trainer", "aggregator", "api"):
        module = f"backend.cli.{name}"
        if importlib.util.find_spec(module) is not None:
            app.add_typer(importlib.import_module(module).app, name=name)
    if importlib.util.find_spec("backend.cli.toplevel") is not None:
        importlib.import_module("backend.cli.toplevel").register(app)


def run() -> None:
    """Console-script entry point: readable one-line errors unless --debug."""
    _register()
    debug = "--debug" in sys.argv
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:  # typer.Exit(n) comes back as a return value here
            sys.exit(code)
    except MeritError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[red]aborted[/red]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
                          highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
