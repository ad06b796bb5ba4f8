"""`merit api ...`: run the REST API that trainers use."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

import typer
from rich.console import Console

from backend.config import get_settings

app = typer.Typer(help="Run the REST API for trainers.", no_args_is_help=True)
console = Console(stderr=True)

_WILDCARDS = ("0.0.0.0", "::", "")


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _log_level(value: str) -> str:
    """uvicorn's names; another one raised a KeyError inside uvicorn."""
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.lower()


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 for all)"),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port"),
    origin: str = typer.Option(
        None,
        "--origin",
        help="URL(s) trainers use to reach this server, comma-separated "
        "(MERIT_API_ORIGIN); signatures must name one. Default: http://HOST:PORT",
    ),
    writes_per_minute: float = typer.Option(
        None,
        "--writes-per-minute",
        min=0.01,
        help="signed writes each address may make per minute (MERIT_API_WRITES_PER_MINUTE)",
    ),
    log_level: str = typer.Option(
        "info", "--log-level", callback=_log_level, help="uvicorn log level: " + ", ".join(LOG_LEVELS)
    ),
) -> None:
    """Serve the API with uvicorn, on the configured chain and store (default: embedded ones).

    Example: merit api serve --port 8000   (then open http://127.0.0.1:8000/docs)
    """
    import uvicorn

    from backend.api import create_app
    from backend.api.server import uvicorn_config
    from backend.errors import ConfigError

    settings = get_settings()
    overrides = {}
    if origin or not settings.api_origin:
        if not origin and host in _WILDCARDS:
            raise ConfigError(
                f"--host {host} listens on every interface, so the server cannot tell which URL trainers use",
                "pass --origin http://<public host>:<port> (or set MERIT_API_ORIGIN): signed requests name it",
            )
        overrides["api_origin"] = origin or f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if writes_per_minute is not None:
        overrides["api_writes_per_minute"] = writes_per_minute
    settings = settings.model_copy(update=overrides)
    app_ = create_app(settings)
    console.print(
        f"[green]Merit API[/green] on http://{host}:{port} for {settings.api_origin} "
        f"(chain: {settings.chain}, store: {settings.ipfs}); OpenAPI at /openapi.json, docs at /docs"
    )
    uvicorn.Server(uvicorn_config(app_, settings, host=host, port=port, log_level=log_level)).run()
