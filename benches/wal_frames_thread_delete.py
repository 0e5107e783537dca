#!/usr/bin/env python3
# WAL frames written by deleting one 10,000-message thread of 1,000,000
# (the data of benches/scale_hydraflow.rs), plain SQLite, secure_delete on,
# delete + commit before the checkpoint: the schema-13 table (UNIQUE text
# id) against migration 0014's (id_key INTEGER + plain index). Figures in
# docs/PERFORMANCE.md. Run: python3 benches/wal_frames_thread_delete.py
import hashlib, os, sqlite3, struct, sys, tempfile, time

def key(s):
    return struct.unpack('>q', hashlib.sha256(s.encode()).digest()[:8])[0]

SCHEMAS = {
 'unique_text_id': """CREATE TABLE llm_messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
   thread_id TEXT NOT NULL, parent_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL,
   tokens INTEGER, created_at INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}') STRICT;
   CREATE INDEX llm_messages_by_thread ON llm_messages (thread_id, created_at, seq);""",
 'id_key': """CREATE TABLE llm_messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, id_key INTEGER NOT NULL,
   thread_id TEXT NOT NULL, parent_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL,
   tokens INTEGER, created_at INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}') STRICT;
   CREATE INDEX llm_messages_by_thread ON llm_messages (thread_id, created_at, seq);
   CREATE INDEX llm_messages_by_id_key ON llm_messages (id_key);""",
}
N, THREADS = 1_000_000, 100
for name, schema in SCHEMAS.items():
    d = tempfile.mkdtemp()
    path = os.path.join(d, 'db.sqlite3')
    c = sqlite3.connect(path, isolation_level=None)
    c.create_function('hydra_id_key', 1, key, deterministic=True)
    c.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON; PRAGMA cache_size=-65536;")
    c.executescript(schema)
    cols = "id, id_key," if name == 'id_key' else "id,"
    keyexpr = "id, hydra_id_key(id)," if name == 'id_key' else "id,"
    c.executescript(f"""BEGIN;
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {N-1}),
        m(i, id) AS MATERIALIZED (SELECT i, lower(hex(randomblob(16))) FROM n)
      INSERT INTO llm_messages ({cols} thread_id, role, content, created_at)
      SELECT {keyexpr} 't' || ((i / 100) % {THREADS}), iif(i % 2 = 0, 'user', 'assistant'),
        'message number ' || i || ' with some words in it', 1700000000000 + i FROM m;
      COMMIT; PRAGMA wal_checkpoint(TRUNCATE);""")
    pages = c.execute("PRAGMA page_count").fetchone()[0]
    res = []
    for k in range(3):
        t = time.perf_counter()
        c.execute("BEGIN")
        n = c.execute("DELETE FROM llm_messages WHERE thread_id = ?", (f"t{k}",)).rowcount
        c.execute("COMMIT")
        dt = time.perf_counter() - t
        wal = os.path.getsize(path + '-wal')
        frames = (wal - 32) // (4096 + 24)
        res.append((n, frames, wal, dt))
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(name, 'db pages', pages, 'size MB', round(pages*4096/1e6,1))
    for n, frames, wal, dt in res:
        print(f"  deleted {n}: {frames} WAL frames, {wal/1e6:.1f} MB, {dt*1000:.0f} ms (delete+commit, no checkpoint)")
    c.close()
