"""Per-call overhead of the Python binding: ``profile.meta_version()``
(encode, ctypes call, decode, free, unwrap) as a user calls it. Prints the
median of 15 batches of 20,000 calls as ``python_meta_version_median_ns=<n>``
(wall clock) and ``python_meta_version_cpu_median_ns=<n>`` (this thread's
CPU time: on a shared, loaded machine the wall clock also counts the time
other processes held the CPU), then ``python_meta_version: PASS`` or
``MISS`` against the target (under 5 us per call, wall clock median) and
exits 1 on a miss.
Run by scripts/bench against the installed package (release library)."""

import os
import statistics
import sys
import tempfile
import time

import hydra_core

BATCHES, CALLS = 15, 20_000
TARGET_NS = 5_000

with tempfile.TemporaryDirectory() as tmp, hydra_core.Profile.open(tmp) as p:
    for _ in range(2_000):  # warm up
        p.meta_version()
    per_call, cpu_per_call = [], []
    for _ in range(BATCHES):
        start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(CALLS):
            p.meta_version()
        cpu_per_call.append((time.thread_time_ns() - cpu_start) / CALLS)
        per_call.append((time.perf_counter_ns() - start) / CALLS)
    wall, cpu = statistics.median(per_call), statistics.median(cpu_per_call)
    print(f"python_meta_version_median_ns={wall:.0f}")
    print(f"python_meta_version_cpu_median_ns={cpu:.0f}")
    verdict = "PASS" if wall < TARGET_NS else "MISS"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"python_meta_version: {verdict} ({wall / 1000:.2f} us wall, {cpu / 1000:.2f} us CPU, target < {TARGET_NS / 1000:.0f} us; load {load})")
    sys.exit(0 if verdict == "PASS" else 1)
