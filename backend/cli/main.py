"""The `merit` command. Sub-commands are grouped by who uses them (see README)."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from backend.errors import MeritError, shorten

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
    # Once per process, before any command imports torch: a fair share of the cores (backend/threads.py).
    from backend.config import get_settings
    from backend.errors import ConfigError
    from backend.threads import configure_threads

    try:
        override = get_settings().torch_threads
    except ConfigError:  # the command that needs the broken setting reports it; this one must not
        override = None
    configure_threads(override)


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
    """Console-script entry point, following click's conventions: a usage error (unknown command, bad
    or missing argument) prints the usage line and exits 2; a runtime error prints one red line that
    says what to do and exits 1 (the traceback only with --debug)."""
    _register()
    debug = "--debug" in sys.argv
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's errors; Typer vendors click, so not click.ClickException
        _show_click_error(exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]aborted[/red]")
        sys.exit(1)
    except MeritError as exc:
        if debug:
            raise
        _fail(str(exc))
    except OSError as exc:  # a path the user named: missing, a directory, read-only, a full disk
        if debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot use{where}: {exc.strerror or exc} (check the path and its permissions)")
    except Exception as exc:  # a bug, or a failure nobody wrapped: still one line, and the way to see more
        if debug:
            raise
        _fail(f"{type(exc).__name__}: {exc} (re-run with --debug for the traceback)")
    if isinstance(code, int) and code != 0:  # typer.Exit(n) and Ctrl-C (130) come back as a return value
        sys.exit(code)


def _show_click_error(exc: typer.TyperException) -> None:
    """click's own rendering: for a usage error, the usage line, the --help hint, then the error.
    An option missing its value is raised before click knows the command, so find it from argv."""
    if getattr(exc, "ctx", "absent") is None and exc.exit_code == 2:
        exc.ctx = _context_for(sys.argv[1:])
    exc.show()


def _context_for(argv: list[str]) -> typer.Context:
    """A context for the deepest command that ``argv`` names, for its usage line."""
    command, path = typer.main.get_command(app), ["merit"]
    for token in argv:
        sub = getattr(command, "commands", {}).get(token)
        if sub is None:
            if not token.startswith("-"):
                break
            continue
        command, path = sub, [*path, token]
    return typer.Context(command, info_name=" ".join(path))


def _fail(message: str) -> NoReturn:
    # one line, however much of a stranger's data (a node's answer, a revert's bytes) an error quotes
    # escaped: a path or a node's answer may hold [brackets] that rich would read as markup (and raise on)
    err_console.print(f"[red]error:[/red] {escape(shorten(message, 1000))}", highlight=False, soft_wrap=True)
    sys.exit(1)


if __name__ == "__main__":
    run()
