#!/usr/bin/env python3
"""The peer: the reference Python/Flask backend's storage style, for
side-by-side benchmarks (`benches/history_scale.rs` runs it).

One sqlite3 connection, one commit per call, `LIKE` for text search and host
purges, a plain schema with the indexes the reference creates. Each workload
is a name; the CLI is `peer.py WORKLOAD --db PATH --n N` and prints one JSON
object (`median_ms` for timed calls, `rate` per second for inserts). Other
workloads (messages, imports) are added to WORKLOADS by name.

The rows are the ones `benches/history_scale.rs` generates: keep `visit()`
identical to its Rust twin.
"""
import argparse
import json
import os
import sqlite3
import statistics
import time

T0 = 1_600_000_000_000
WORDS = [
    "news", "weather", "recipe", "travel", "python", "rust", "music", "video", "sport", "garden",
    "photo", "health", "money", "market", "school", "movie", "review", "guide", "kitchen", "house",
    "forum", "search", "mail", "maps", "shop", "book", "story", "science", "space", "ocean",
    "city", "car", "bike", "train", "flight", "hotel", "coffee", "tea", "bread", "pasta", "game",
    "chess", "art", "design", "code", "cloud", "phone", "laptop", "camera", "watch",
]


def mix(x):
    return (x * 2_654_435_761) % 4_294_967_296


def visit(i):
    x = mix(i)
    if i % 100 < 10:
        host_idx, path = i % 10, x % 2500
    else:
        host_idx, path = 10 + x % 9990, (x >> 16) % 25
    host = f"site{host_idx}.example.com"
    url_id = host_idx * 2500 + path
    url = f"https://{host}/articles/{path}/page-{url_id}"
    m = mix(url_id)
    title = f"{WORDS[url_id % 50]} {WORDS[(url_id // 50) % 50]} story {path}"
    if m % 10 == 3:
        title += " tenpct"
    if m % 1000 == 7:
        title += " rareq01"
    return url, title, host, T0 + i * 60_000


class Storage:
    """The reference backend's storage class, reduced to history."""

    def __init__(self, path):
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " url TEXT NOT NULL, title TEXT, host TEXT, visited_at INTEGER NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS idx_history_time ON history (visited_at)")
        self.db.execute("CREATE INDEX IF NOT EXISTS idx_history_url ON history (url)")
        self.db.commit()

    def record(self, v):
        self.db.execute("INSERT INTO history (url, title, host, visited_at) VALUES (?, ?, ?, ?)", v)
        self.db.commit()

    def record_many(self, rows):
        self.db.executemany("INSERT INTO history (url, title, host, visited_at) VALUES (?, ?, ?, ?)", rows)
        self.db.commit()

    def search(self, q, limit=200):
        like = f"%{q}%"
        return self.db.execute(
            "SELECT id, url, title, visited_at FROM history WHERE url LIKE ? OR title LIKE ?"
            " ORDER BY visited_at DESC LIMIT ?",
            (like, like, limit),
        ).fetchall()

    def purge_host(self, host):
        n = self.db.execute("DELETE FROM history WHERE host LIKE ?", (f"%{host}",)).rowcount
        self.db.commit()
        return n

    def purge_range(self, start, end):
        n = self.db.execute("DELETE FROM history WHERE visited_at BETWEEN ? AND ?", (start, end)).rowcount
        self.db.commit()
        return n

    def purge_all(self):
        self.db.execute("DELETE FROM history")
        self.db.commit()


def timed(fn, repeat):
    samples = []
    for k in range(repeat):
        t = time.perf_counter()
        fn(k)
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def w_build(s, n, path):
    s.record_many(visit(i) for i in range(n))
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(os.path.getsize(os.path.join(os.path.dirname(path), f))
               for f in os.listdir(os.path.dirname(path)))
    return {"rows": n, "size_bytes": size}


def w_record(s, n, _):
    count = 3000
    t = time.perf_counter()
    for i in range(n, n + count):
        s.record(visit(i))
    return {"rate": count / (time.perf_counter() - t)}


def w_record_batch(s, n, _):
    start = n + 100_000
    rates = []
    for b in range(7):
        rows = [visit(i) for i in range(start + b * 1000, start + (b + 1) * 1000)]
        t = time.perf_counter()
        s.record_many(rows)
        rates.append(1000 / (time.perf_counter() - t))
    return {"rate": statistics.median(rates)}


def w_search_rare(s, n, _):
    return {"median_ms": timed(lambda _: s.search("rareq01"), 5)}


def w_search_common(s, n, _):
    return {"median_ms": timed(lambda _: s.search("tenpct"), 5)}


def w_purge_host(s, n, _):
    return {"median_ms": timed(lambda k: s.purge_host(f"site{5 + k}.example.com"), 3)}


def w_purge_range(s, n, _):
    start, end = T0 + (n * 40 // 100) * 60_000, T0 + (n * 52 // 100) * 60_000 - 1
    return {"median_ms": timed(lambda _: s.purge_range(start, end), 1)}


def w_purge_all(s, n, _):
    return {"median_ms": timed(lambda _: s.purge_all(), 1)}


WORKLOADS = {
    "build": w_build,
    "record": w_record,
    "record_batch": w_record_batch,
    "search_rare": w_search_rare,
    "search_common": w_search_common,
    "purge_host": w_purge_host,
    "purge_range": w_purge_range,
    "purge_all": w_purge_all,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--db", required=True)
    p.add_argument("--n", type=int, default=1_000_000)
    a = p.parse_args()
    s = Storage(a.db)
    out = WORKLOADS[a.workload](s, a.n, a.db)
    out["workload"] = a.workload
    print(json.dumps(out))


if __name__ == "__main__":
    main()
