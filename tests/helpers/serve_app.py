"""Run the web app for fault tests: ``python serve_app.py CACHE DATABASE PORT_FILE [WORKERS]``.

Like ``skillcircle serve`` but with 30-minute isochrones only and the given
cache, so it starts in about a second from the test session's warm cache.
Without WORKERS: one waitress process that recomputes in a thread. With WORKERS
(> 1): gunicorn with that many forked workers and a supervised recompute
process, exactly as ``skillcircle serve --workers N`` runs (jobs whose process
died are taken again after 2 s here, 60 s in production). Writes the port to
PORT_FILE once it is listening (gunicorn: before, the test polls).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from geo.settings import Settings
from geo.study import Study
from web import create_app
from web.store import is_database_url


def main() -> None:
    cache, database, port_file = sys.argv[1:4]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    study = Study.load(Settings(cache_dir=Path(cache)), iso_minutes=(30,))
    config = {
        "STUDY": study,
        "DATABASE": database,
        "TILE_URL": "none",
        "RATELIMIT_ADMIN": "100000 per minute",
        "RATELIMIT_PUBLIC": "100000 per second",
        "RATELIMIT_REGISTER": "100000 per minute",
        "RATELIMIT_CHALLENGE": "100000 per minute",
        "RATELIMIT_PHONE": "100000 per day",
    }
    if is_database_url(database):  # counters beside the port file, not in the instance folder
        config["RATELIMIT_STORAGE"] = f"sqlite:///{Path(port_file).parent / 'ratelimit.sqlite3'}"
    if workers == 1:
        from web.serving import waitress_server

        app = create_app(config)
        server = waitress_server(app, "127.0.0.1", 0, threads=4)
        Path(port_file).write_text(str(server.effective_port))
        server.run()
        return
    from web.serving import RecomputeProcess, serve_gunicorn

    app = create_app({**config, "RECOMPUTE": "external", "FOLLOW": True, "JOB_STALE_S": 2.0})
    with socket.socket() as probe:  # a free port for gunicorn
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recompute = RecomputeProcess(app)
    recompute.start()
    Path(port_file).write_text(str(port))
    try:
        serve_gunicorn(app, "127.0.0.1", port, workers, threads=2)
    finally:  # as `skillcircle serve`: no recompute process outlives the server
        recompute.stop()


if __name__ == "__main__":
    main()
