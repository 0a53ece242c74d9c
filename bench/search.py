"""Course search and sign-ups: how fast ``/api/search`` answers and how registrations queue.

``python bench/search.py [--courses 2000] [--repeat 200]`` builds the app on the bundled
data (warm results cache) with a fresh SQLite store, adds ``--courses`` courses and
a tenth as many evaluation sessions at random facilities, then times (in process,
Flask's test client, so without network) with percentiles over ``--repeat`` calls:

* the first search after a change (the catalogue of the data version is built);
* a search without origin (filters over the catalogue) with and without a trade;
* ``village=<code>`` the first time for a village (its card plus one bounded
  Dijkstra) and again (remembered), for every mode;
* ``lon/lat`` at random points (one bounded Dijkstra each);
* ``minutes=30`` "near me" from a village;
* registrations (challenge, answer, write) one after another.

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from signup import COURSE, solve

    from geo.settings import Settings
    from geo.study import Study
    from web import create_app

    study = Study.load(Settings())
    tmp = tempfile.mkdtemp(prefix="bench-search-")
    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": f"{tmp}/store.sqlite3",
            "RATELIMIT_PUBLIC": "1000000 per second",
            "RATELIMIT_REGISTER": "1000000 per minute",
            "RATELIMIT_CHALLENGE": "1000000 per minute",
            "RATELIMIT_PHONE": "1000000 per day",
        }
    )
    client = app.test_client()
    store = app.extensions["skillcircle.store"]
    rng = random.Random(7)
    ids = study.facilities["id"].tolist()
    trades = study.trades
    with store.write(None, "seed", "course", "*") as tx:
        for n in range(args.courses):
            start = f"2099-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            tx.insert_item(
                "courses",
                rng.choice(ids),
                {**COURSE, "title": f"培训班{n}", "trade": rng.choice(trades),
                 "start_date": start, "end_date": None, "seats": 30},
            )  # fmt: skip
        for _ in range(args.courses // 10):
            tx.insert_item(
                "evaluations",
                rng.choice(ids),
                {"trade": rng.choice(trades), "level": rng.choice(["初级", "中级", "高级"]),
                 "date": f"2099-{rng.randint(1, 12):02d}-15", "seats": 20},
            )  # fmt: skip
    codes = study.villages["village_code"].astype(str).tolist()
    min_lon, min_lat, max_lon, max_lat = study.settings.region.bounds
    rows: dict[str, list[float]] = {}

    def timed(label: str, url: str) -> dict:
        started = time.perf_counter()
        resp = client.get(url)
        rows.setdefault(label, []).append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 200, (url, resp.get_json())
        return resp.get_json()

    total = timed("first search after a change (catalogue built)", "/api/search")["total"]
    for _ in range(args.repeat):
        timed("search, no origin", "/api/search")
        timed("search, trade filter", f"/api/search?trade={rng.choice(trades)}")
        timed("search, text q", "/api/search?q=班1")
    for mode in study.modes:
        for code in rng.sample(codes, min(args.repeat, len(codes))):
            timed(f"village, first time ({mode})", f"/api/search?village={code}&mode={mode}")
            timed(f"village, again ({mode})", f"/api/search?village={code}&mode={mode}")
    for code in rng.sample(codes, min(args.repeat, len(codes))):
        timed("village, near me (30 min ebike)", f"/api/search?village={code}&minutes=30")
    for _ in range(args.repeat):
        lon = round(rng.uniform(min_lon + 0.1, max_lon - 0.1), 5)
        lat = round(rng.uniform(min_lat + 0.1, max_lat - 0.1), 5)
        timed("point (ebike)", f"/api/search?lon={lon}&lat={lat}&minutes=30")
    course_ids = [r[0] for r in store.conn.execute("SELECT id FROM courses").fetchall()]
    for n in range(args.repeat):
        started = time.perf_counter()
        challenge = client.get("/api/register/challenge").get_json()
        answer = {"token": challenge["token"], "answer": solve(challenge["question"])}
        resp = client.post(
            "/api/registrations",
            json={"kind": "course", "item_id": rng.choice(course_ids), "name": "工人",
                  "phone": f"139{n:08d}", "consent": True, "challenge": answer},
        )  # fmt: skip
        assert resp.status_code == 201, resp.get_json()
        rows.setdefault("challenge + registration", []).append(
            (time.perf_counter() - started) * 1000
        )
    timed("first search after a registration", "/api/search")

    print(f"{args.courses} courses + {args.courses // 10} sessions; {total} upcoming items")
    print(f"{'what':48} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    summary = {}
    for label, values in rows.items():
        med, p95 = statistics.median(values), _pct(values, 0.95)
        summary[label] = {"n": len(values), "median_ms": round(med, 2), "p95_ms": round(p95, 2)}
        print(f"{label:48} {len(values):>5} {med:>10.2f} {p95:>8.2f} {max(values):>8.2f}")
    print(json.dumps({"courses": args.courses, "items": total, "timings": summary}))


if __name__ == "__main__":
    main()
