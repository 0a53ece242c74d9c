"""The web app as the admin, registration, demand and serving tests make it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from geo.study import Study
from web import create_app

#: Limits far above what a test sends: only the tests about a limit (which set their own)
#: meet one.
HIGH_LIMITS = {
    "RATELIMIT_PUBLIC": "10000 per second",
    "RATELIMIT_ADMIN": "10000 per minute",
    "RATELIMIT_REGISTER": "10000 per minute",
    "RATELIMIT_CHALLENGE": "10000 per minute",
    "RATELIMIT_PHONE": "10000 per day",
    "RATELIMIT_DEMAND": "10000 per minute",
}


def make_app(study: Study, database: str, **config: Any) -> Flask:
    """A testing app serving ``study`` on the store ``database``, without tiles, with
    :data:`HIGH_LIMITS`; ``config`` overrides any of it."""
    return create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": database,
            **HIGH_LIMITS,
            **config,
        }
    )
