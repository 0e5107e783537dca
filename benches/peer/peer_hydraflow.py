#!/usr/bin/env python3
"""The Flask peer's HydraFlow storage, for side-by-side benchmarks.

Written the way the reference Python/Flask backend's storage class works:
one sqlite3 connection, one commit per call, COUNT(*) for the dashboard,
executemany for imports. Same CLI shape as peer.py:

    peer_hydraflow.py WORKLOAD --db PATH --n N [--bundle PATH]

Workloads (each prints one JSON object on stdout):
  messages_append  N single-message appends, one commit each -> {"per_s"}
  thread_delete    N messages in threads of 10,000 (bursts of 100), then
                   deletes three threads, one commit each -> {"median_ms"}
  overview         N visits, N/5 messages, N/10 jobs, then the dashboard
                   COUNT queries -> {"median_ms"}
  bundle_import    reads the NDJSON bundle at --bundle and inserts its
                   records with executemany, one commit -> {"per_s", "records"}
"""

import argparse
import json
import os
import sqlite3
import statistics
import time
import uuid


class Storage:
    """One connection, like the reference backend's storage class."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS threads (
                id TEXT PRIMARY KEY, title TEXT, created_at INTEGER, updated_at INTEGER,
                last_user_message_at INTEGER, last_assistant_message_at INTEGER,
                metadata TEXT DEFAULT '{}');
            CREATE TABLE IF NOT EXISTS messages (
                id TEXT PRIMARY KEY, thread_id TEXT REFERENCES threads(id), parent_id TEXT,
                role TEXT, content TEXT, tokens INTEGER, created_at INTEGER,
                metadata TEXT DEFAULT '{}');
            CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread_id, created_at);
            CREATE TABLE IF NOT EXISTS tasks (
                id TEXT PRIMARY KEY, thread_id TEXT, title TEXT, status TEXT,
                created_at INTEGER, updated_at INTEGER, metadata TEXT DEFAULT '{}');
            CREATE TABLE IF NOT EXISTS history (
                id INTEGER PRIMARY KEY, url TEXT, host TEXT, title TEXT, visited_at INTEGER,
                tab_id TEXT, UNIQUE(url, visited_at));
            CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, type TEXT, status TEXT, created_at INTEGER);
            CREATE TABLE IF NOT EXISTS tabs (id TEXT PRIMARY KEY, thread_id TEXT);
            CREATE TABLE IF NOT EXISTS bookmarks (id INTEGER PRIMARY KEY, url TEXT);
            CREATE TABLE IF NOT EXISTS memories (id TEXT PRIMARY KEY, value TEXT);
            """
        )

    def create_thread(self, thread_id):
        now = int(time.time() * 1000)
        self.conn.execute("BEGIN")
        self.conn.execute(
            "INSERT INTO threads (id, created_at, updated_at) VALUES (?, ?, ?)",
            (thread_id, now, now),
        )
        self.conn.execute("COMMIT")

    def append_message(self, thread_id, role, content):
        now = int(time.time() * 1000)
        message_id = str(uuid.uuid4())
        self.conn.execute("BEGIN")
        self.conn.execute(
            "INSERT INTO messages (id, thread_id, role, content, created_at) VALUES (?, ?, ?, ?, ?)",
            (message_id, thread_id, role, content, now),
        )
        column = "last_user_message_at" if role == "user" else "last_assistant_message_at"
        self.conn.execute(
            f"UPDATE threads SET updated_at = ?, {column} = ? WHERE id = ?",
            (now, now, thread_id),
        )
        self.conn.execute("COMMIT")
        return {"id": message_id, "thread_id": thread_id, "role": role, "content": content}

    def delete_thread(self, thread_id):
        self.conn.execute("BEGIN")
        self.conn.execute("DELETE FROM messages WHERE thread_id = ?", (thread_id,))
        self.conn.execute("UPDATE tasks SET thread_id = NULL WHERE thread_id = ?", (thread_id,))
        self.conn.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
        self.conn.execute("COMMIT")

    def overview(self):
        one = lambda sql: self.conn.execute(sql).fetchone()
        return {
            "history": one("SELECT COUNT(*), MAX(visited_at) FROM history"),
            "threads": one("SELECT COUNT(*) FROM threads")[0],
            "messages": one("SELECT COUNT(*) FROM messages")[0],
            "memories": one("SELECT COUNT(*) FROM memories")[0],
            "tabs": one("SELECT COUNT(*), COUNT(thread_id) FROM tabs"),
            "bookmarks": one("SELECT COUNT(*) FROM bookmarks")[0],
            "tasks": self.conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall(),
            "jobs": self.conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall(),
            "job_types": self.conn.execute("SELECT type, COUNT(*) FROM jobs GROUP BY type").fetchall(),
        }

    def import_bundle(self, path):
        rows = {"threads": [], "messages": [], "tasks": [], "browser_history": []}
        with open(path) as f:
            f.readline()  # manifest
            for line in f:
                record = json.loads(line)
                rows.setdefault(record["c"], []).append(record["r"])
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT OR IGNORE INTO threads (id, title, created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?)",
            [(r["id"], r["title"], r["created_at"], r["updated_at"], json.dumps(r["metadata"])) for r in rows["threads"]],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO messages (id, thread_id, parent_id, role, content, tokens, created_at, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], r["thread_id"], r["parent_id"], r["role"], r["content"], r["tokens"], r["created_at"],
              json.dumps(r["metadata"])) for r in rows["messages"]],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO tasks (id, thread_id, title, status, created_at, updated_at, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], r["thread_id"], r["title"], r["status"], r["created_at"], r["updated_at"],
              json.dumps(r["metadata"])) for r in rows["tasks"]],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO history (url, host, title, visited_at, tab_id) VALUES (?, ?, ?, ?, ?)",
            [(r["url"], r["host"], r["title"], r["visited_at"], r["tab_id"]) for r in rows["browser_history"]],
        )
        self.conn.execute("COMMIT")
        return sum(len(v) for v in rows.values())


def messages_append(storage, n):
    storage.create_thread("peer-thread")
    start = time.perf_counter()
    for i in range(n):
        storage.append_message("peer-thread", "user" if i % 2 == 0 else "assistant",
                               "a short chat message of ordinary length")
    return {"per_s": n / (time.perf_counter() - start)}


def thread_delete(storage, n):
    threads = max(n // 10_000, 3)
    storage.conn.execute("BEGIN")
    storage.conn.executemany(
        "INSERT INTO threads (id, created_at, updated_at) VALUES (?, 1, 1)",
        [(f"t{k}",) for k in range(threads)],
    )
    rows = (
        (str(uuid.uuid4()), f"t{(i // 100) % threads}", "user",
         f"message number {i} with some words in it", i)
        for i in range(n)
    )
    storage.conn.executemany(
        "INSERT INTO messages (id, thread_id, role, content, created_at) VALUES (?, ?, ?, ?, ?)", rows)
    storage.conn.execute("COMMIT")
    times = []
    for k in range(3):
        start = time.perf_counter()
        storage.delete_thread(f"t{k}")
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times)}


def overview(storage, n):
    storage.conn.execute("BEGIN")
    storage.conn.executemany(
        "INSERT INTO history (url, host, title, visited_at) VALUES (?, ?, ?, ?)",
        ((f"https://host{i % 10_000}.example/page/{i}", f"host{i % 10_000}.example", f"Page {i}", i)
         for i in range(n)),
    )
    storage.conn.execute("INSERT INTO threads (id, created_at, updated_at) VALUES ('t', 1, 1)")
    storage.conn.executemany(
        "INSERT INTO messages (id, thread_id, role, content, created_at) VALUES (?, 't', 'user', ?, ?)",
        ((f"m{i}", f"message {i}", i) for i in range(n // 5)),
    )
    statuses = ["queued", "running", "succeeded", "failed", "cancelled"]
    storage.conn.executemany(
        "INSERT INTO jobs (id, type, status, created_at) VALUES (?, ?, ?, ?)",
        ((f"j{i}", f"type{i % 4}", statuses[i % 5], i) for i in range(n // 10)),
    )
    storage.conn.execute("COMMIT")
    storage.overview()  # warm the cache, as the library's figure is warm
    times = []
    for _ in range(21):
        start = time.perf_counter()
        storage.overview()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times)}


def bundle_import(storage, bundle):
    start = time.perf_counter()
    records = storage.import_bundle(bundle)
    return {"per_s": records / (time.perf_counter() - start), "records": records}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["messages_append", "thread_delete", "overview", "bundle_import"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--bundle")
    args = parser.parse_args()
    if os.path.exists(args.db):
        os.remove(args.db)
    storage = Storage(args.db)
    if args.workload == "bundle_import":
        result = bundle_import(storage, args.bundle)
    else:
        result = globals()[args.workload](storage, args.n)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
