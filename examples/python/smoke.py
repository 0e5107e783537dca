"""Smoke test of the Python (ctypes) binding: open, call, errors, close.

Run with the installed package: `pip install ./bindings/python`, then
`python examples/python/smoke.py` (scripts/test does it in .venv).
"""

import sys
import tempfile
import time
from pathlib import Path

import hydra_core

checks = 0
failures = 0


def check(name, condition):
    global checks, failures
    checks += 1
    if not condition:
        failures += 1
        print(f"FAILED: {name}")


def error_code(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except hydra_core.HydraError as e:
        return e.code
    return None


with tempfile.TemporaryDirectory() as tmp:
    profile = hydra_core.Profile.open(tmp)
    info = profile.meta_version()
    check("version matches", info["version"] == hydra_core.version())
    check("schema version", info["schema_version"] >= 1)
    ops = profile.meta_operations()["items"]
    check("operations listed", any(op["name"] == "profile.info" for op in ops))
    check("typed method per operation", all(hasattr(profile, op["name"].replace(".", "_")) for op in ops))
    check("profile dir", profile.profile_info()["profile_dir"] == str(Path(tmp).resolve()))
    check("unknown field", error_code(profile.call, "meta.version", {"x": 1}) == "invalid_argument")
    check("invalid json", error_code(profile.call, "meta.version", "{") == "invalid_json")
    check("unknown op", error_code(profile.call, "nope.nope") == "unknown_operation")
    check("bad utf-8", error_code(profile.call, "meta.version", b'{"a":"\xff"}') == "invalid_argument")
    check("second open locked", error_code(hydra_core.Profile.open, tmp) == "profile_locked")
    # The chat model callback: answers a turn on this thread.
    profile.register_model(lambda req: {"content": "echo: " + req["message"], "model": "py"})
    turn = profile.chat({"message": "hello"})
    check("model answered", turn["assistant_message"]["content"] == "echo: hello")
    profile.register_model(lambda req: (_ for _ in ()).throw(hydra_core.HydraError("timeout", "slow", {})))
    check("model error code", error_code(profile.chat, {"message": "again"}) == "timeout")
    profile.register_model(None)
    check("no model", profile.chat({"message": "quiet"})["assistant_message"] is None)

    # Knowledge: store a page, embed it through the embedder callback (on a
    # worker thread), search it by words and by vector.
    profile.documents_upsert({"url": "https://py.example/", "title": "Trains", "text": "Steam trains run on rails."})
    profile.register_embedder(lambda req: {"vectors": [[1.0, float(len(t))] for t in req["texts"]]})
    embedded = profile.documents_embed({"model": "py", "wait": True})
    check("embedder ran", embedded["embedded"] == 1 and embedded["failed"] == 0)
    hits = profile.documents_search({"query": "RAILS", "embedding": {"model": "py", "vector": [1.0, 26.0]}})["items"]
    check("document found", hits[0]["document"]["url"] == "https://py.example/" and hits[0]["vector_rank"] == 1)
    profile.register_embedder(None)
    check("no embedder", error_code(profile.documents_embed, {"model": "py"}) == "no_handler")

    # A host job handler and the event callback, both on worker threads.
    events = []
    profile.set_event_callback(events.append)
    profile.register_job_handler("focused_crawl", lambda job: {"pages": 3, "query": job["payload"].get("query")})
    job_id = profile.refresh_focused_crawl({"query": "trains"})["job_id"]
    job = profile.jobs_wait({"id": job_id, "timeout_ms": 10000})["job"]
    check("host job succeeded", job["status"] == "succeeded" and job["result"] == {"pages": 3, "query": "trains"})
    # Events arrive from the library's event thread, just after each commit.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(e["job"]["status"] == "succeeded" for e in events):
        time.sleep(0.01)
    check("events seen", [e["job"]["status"] for e in events if e["job"]["id"] == job_id][-1:] == ["succeeded"])
    check("event shape", all(e["type"] == "job.updated" for e in events))
    profile.register_job_handler("focused_crawl", None)
    check("no handler", error_code(profile.refresh_focused_crawl, {}) == "no_handler")

    handle = profile.handle
    profile.close()
    stale = hydra_core.Profile.__new__(hydra_core.Profile)
    stale.handle = handle
    check("closed handle", error_code(stale.call, "meta.version") == "closed")
    with hydra_core.Profile.open(tmp) as again:
        check("reopens", again.meta_version()["version"] == info["version"])

print(f"python: {checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
