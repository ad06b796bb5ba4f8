"""The REST API for trainers (FastAPI). ``create_app`` builds it; ``merit api serve`` runs it.

``create_app`` is imported lazily so that clients, which only need ``backend.api.signing``, do not
load the server (FastAPI, torch through the validator) with it.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from backend.api.app import create_app

        return create_app
    raise AttributeError(f"module 'backend.api' has no attribute {name!r}")
