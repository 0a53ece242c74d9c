"""Running the app for real: waitress (one process) or gunicorn (``--workers N``), plus a
recompute process, so that no request worker ever computes coverage.

The app is built once in the parent process (the study loaded or read from the
results cache), then:

* a **recompute process** is forked from it and runs
  :meth:`web.sync.Recomputer.run_forever`; a supervisor thread starts it again if
  it dies (kill -9): its job is taken again once its heartbeat is stale, and until
  then every worker serves the previous version;
* with one worker, waitress serves the app in the parent process; with more,
  gunicorn (``preload_app``: the workers are forked from the parent and share its
  memory) runs them, restarting any that dies. Every process follows the
  published results (:class:`web.sync.Follower`).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from flask import Flask

logger = logging.getLogger(__name__)


#: The recompute process's niceness: the request workers come first for the CPU, it
#: computes in what they leave (at the rates a city sends, most of a core).
RECOMPUTE_NICE = 10


def _recompute_main(app: Flask, parent: int) -> None:
    """Body of the recompute process (forked with the loaded app); never returns.

    It ends with its parent: on SIGTERM, and when the parent is gone (kill -9).
    """
    os.nice(RECOMPUTE_NICE)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the parent, which stops us
    stop = threading.Event()

    def orphaned() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        app.extensions["skillcircle.recomputer"].run_forever(stop)
    finally:
        os._exit(1)


def settle_heap() -> None:
    """Collect, then freeze what is loaded (:func:`gc.freeze`), before the processes fork.

    The loaded study, road network and rendered maps are some 200,000 objects that
    live as long as the server. Left to the cyclic garbage collector, every full
    collection in a worker walks all of them (a 150 ms pause of every request of the
    process, a few times a minute under load), and writes to their pages, which
    then stop being shared with the parent. Frozen, collections walk only what the
    process made since; results published later are plain tables that refcounting
    frees (they hold no reference cycles).
    """
    gc.collect()
    gc.freeze()


class RecomputeProcess:
    """The recompute process of an app, restarted when it dies.

    A plain :func:`os.fork` (not :mod:`multiprocessing`: gunicorn forks its workers
    from the same parent, which must not inherit a child list to join at exit, and
    gunicorn's SIGCHLD handler may reap our child, which is then seen as gone).

    Parameters
    ----------
    app
        The loaded app (its recomputer, store and study).
    check_s
        How often the supervisor looks whether the process is alive.
    """

    def __init__(self, app: Flask, check_s: float = 0.5) -> None:
        self.app = app
        self.check_s = check_s
        self.pid: int | None = None
        self.restarts = 0
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the recompute process and the thread that restarts it if it dies."""
        self._spawn()
        threading.Thread(target=self._supervise, name="skillcircle-supervisor", daemon=True).start()

    def _spawn(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child
            _recompute_main(self.app, parent)
        self.pid = pid
        logger.info("recompute process %d started", pid)

    def alive(self) -> bool:
        """Whether the process runs (a zombie, or one reaped by someone else, does not)."""
        if self.pid is None:
            return False
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (gunicorn's SIGCHLD handler)
            return False
        return done == 0

    def _supervise(self) -> None:
        while not self._stop.wait(self.check_s):
            if not self.alive():
                logger.warning("recompute process %s ended; starting another", self.pid)
                self.restarts += 1
                self._spawn()

    def stop(self) -> None:
        """Stop the supervisor, then the recompute process (SIGTERM; waits up to 5 s for it)."""
        self._stop.set()
        if self.pid is not None and self.alive():
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                if not self.alive():
                    break
                time.sleep(0.1)


#: Open connections one process keeps (kept-alive phones included): gunicorn's default
#: per worker; waitress's own default, 100, left the 101st client unanswered until
#: another closed (measured: 58 s with 100 phones and an admin).
CONNECTIONS = 1000


def serve_waitress(app: Flask, host: str, port: int, threads: int) -> None:
    """Serve in one process: :func:`waitress_server` (the same parameters) until SIGTERM,
    which exits cleanly."""
    # SIGTERM ends the process through SystemExit, so the caller's clean-up runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    waitress_server(app, host, port, threads).run()


def waitress_server(app: Flask, host: str, port: int, threads: int) -> Any:
    """The one-process server (waitress, :data:`CONNECTIONS` open connections), not yet
    running (``.run()``); port 0 takes a free one (``.effective_port``).

    Parameters
    ----------
    app
        The loaded app.
    host, port
        Where to listen.
    threads
        Threads of the pool.

    Returns
    -------
    waitress.server.BaseWSGIServer
        The server.
    """
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=threads, connection_limit=CONNECTIONS)


def serve_gunicorn(app: Flask, host: str, port: int, workers: int, threads: int) -> None:
    """Serve in several processes: gunicorn forks ``workers`` from this one (the loaded app).

    Parameters
    ----------
    app
        The loaded app (preloaded: the workers share its memory).
    host, port
        Where to listen.
    workers
        Processes.
    threads
        Threads per process (``gthread``).
    """
    from gunicorn.app.base import BaseApplication

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "worker_connections": CONNECTIONS,
                "preload_app": True,
                "timeout": 120,
                "graceful_timeout": 10,
                "keepalive": 5,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    _Application().run()


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passed (for tests and benches).

    Parameters
    ----------
    predicate
        Called without arguments.
    timeout_s
        Seconds to wait at most.
    step_s
        Seconds between polls.

    Returns
    -------
    bool
        Whether it became true in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
