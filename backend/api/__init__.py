"""The REST API for trainers (FastAPI). ``create_app`` builds it; ``merit api serve`` runs it.

What the API shares with its client (the request signature) lives below it, in ``backend.signing``,
so a trainer never loads the server.
"""

from __future__ import annotations

from backend.api.app import create_app

__all__ = ["create_app"]
