"""The REST API for trainers (FastAPI). ``create_app`` builds it; ``merit api serve`` runs it."""
from backend.api.app import create_app

__all__ = ["create_app"]
