"""Smoke test of the Python (ctypes) binding: open, call, errors, close.

Run: python3 examples/python/smoke.py  (after `cargo build`)
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
import hydra_core  # noqa: E402

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
    handle = profile.handle
    profile.close()
    stale = hydra_core.Profile.__new__(hydra_core.Profile)
    stale.handle = handle
    check("closed handle", error_code(stale.call, "meta.version") == "closed")
    with hydra_core.Profile.open(tmp) as again:
        check("reopens", again.meta_version()["version"] == info["version"])

print(f"python: {checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
