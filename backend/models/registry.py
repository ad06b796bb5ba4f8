"""Architecture registry: names in a model spec map to functions that build a ``torch.nn.Module``.

Built-in architectures register themselves with :func:`register_architecture`. Third-party packages
add more through the ``merit.architectures`` entry-point group; each entry point names a callable
``builder(spec) -> nn.Module``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Callable

from backend.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from backend.models.spec import ModelSpec

ENTRY_POINT_GROUP = "merit.architectures"

Builder = Callable[["ModelSpec"], "nn.Module"]
_REGISTRY: dict[str, Builder] = {}
_entry_points_loaded = False


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``@register_architecture("cnn")`` over ``def build(spec) -> nn.Module``."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ConfigError(f"architecture {name!r} is registered twice", "pick another name")
        _REGISTRY[name] = builder
        return builder

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def get_architecture(name: str) -> Builder:
    # deferred: architectures imports this module to register the built-ins, so it cannot come first
    from backend.models import architectures  # noqa: F401

    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}", f"known: {', '.join(available_architectures())}") from None


def available_architectures() -> list[str]:
    from backend.models import architectures  # noqa: F401  (deferred: as in get_architecture)

    _load_entry_points()
    return sorted(_REGISTRY)
