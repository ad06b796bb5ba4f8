"""`merit api ...`: run the REST API that trainers use."""
from __future__ import annotations

import typer
from rich.console import Console

from backend.config import get_settings

app = typer.Typer(help="Run the REST API for trainers.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 for all)"),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port"),
    writes_per_minute: float = typer.Option(60.0, "--writes-per-minute", min=0.01,
                                            help="signed writes each address may make per minute"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: debug, info, warning, error"),
) -> None:
    """Serve the API with uvicorn, on the configured chain and store (default: embedded ones).

    Example: merit api serve --port 8000   (then open http://127.0.0.1:8000/docs)
    """
    import uvicorn

    from backend.api import create_app
    from backend.api.limits import ApiLimits

    settings = get_settings()
    limits = ApiLimits(max_body_bytes=settings.max_update_bytes, writes_per_minute=writes_per_minute)
    app_ = create_app(settings, limits=limits)
    console.print(f"[green]Merit API[/green] on http://{host}:{port} (chain: {settings.chain}, store: {settings.ipfs}); "
                  f"OpenAPI at /openapi.json, docs at /docs")
    # one worker: the upload index and nonce registry are per-server, and the embedded chain per-process
    uvicorn.run(app_, host=host, port=port, log_level=log_level, workers=1)
