"""The installed Merit release, for reports (which release scored a round), `merit verify` and
/v1/health."""

from __future__ import annotations

import functools
from importlib import metadata


@functools.cache  # reading the installed metadata stats site-packages: milliseconds a call
def release() -> str:
    """Merit's installed version, or "unknown" when running from a checkout that was never installed."""
    try:
        return metadata.version("merit")
    except metadata.PackageNotFoundError:
        return "unknown"
