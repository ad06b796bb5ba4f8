"""Top-level commands that belong to no group: deploy, verify, demo."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from backend.cli.chain import deploy_command

    app.command("deploy")(deploy_command)
