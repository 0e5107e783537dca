"""Per-call overhead of the Python binding: ``profile.meta_version()``
(encode, ctypes call, decode, free, unwrap) as a user calls it. Prints the
median of 15 batches of 20,000 calls as ``python_meta_version_median_ns=<n>``.
Run by scripts/bench against the installed package (release library)."""

import statistics
import sys
import tempfile
import time

import hydra_core

BATCHES, CALLS = 15, 20_000

with tempfile.TemporaryDirectory() as tmp, hydra_core.Profile.open(tmp) as p:
    for _ in range(2_000):  # warm up
        p.meta_version()
    per_call = []
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            p.meta_version()
        per_call.append((time.perf_counter_ns() - start) / CALLS)
    median = statistics.median(per_call)
    print(f"python_meta_version_median_ns={median:.0f}")
    sys.exit(0)
