"""Run the web app on waitress for fault tests: ``python serve_app.py CACHE DATABASE PORT_FILE``.

Like ``skillcircle serve`` but with 30-minute isochrones only and the given
cache, so it starts in about a second from the test session's warm cache.
Writes the bound port to PORT_FILE once it is listening.
"""

from __future__ import annotations

import sys
from pathlib import Path

from waitress.server import create_server

from geo.settings import Settings
from geo.study import Study
from web import create_app


def main() -> None:
    cache, database, port_file = sys.argv[1:4]
    study = Study.load(Settings(cache_dir=Path(cache)), iso_minutes=(30,))
    app = create_app(
        {
            "STUDY": study,
            "DATABASE": database,
            "TILE_URL": "none",
            "RATELIMIT_ADMIN": "100000 per minute",
            "RATELIMIT_PUBLIC": "100000 per second",
        }
    )
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    Path(port_file).write_text(str(server.effective_port))
    server.run()


if __name__ == "__main__":
    main()
