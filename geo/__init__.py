"""skillcircle geo engine: road networks, travel times, isochrones and coverage.

Data flow: settings -> load (places, facilities) -> network -> routing (times)
-> isochrones / coverage statistics -> export (and the web app in ``web/``).
"""

__version__ = "0.1.0"
