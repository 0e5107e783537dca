'use strict';
// Per-call overhead of the Node binding: `profile.meta_version()` (encode,
// koffi call, decode, free, unwrap) as a user calls it. Prints the median of
// 15 batches of 20,000 calls as `node_meta_version_median_ns=<n>` (wall
// clock) and `node_meta_version_cpu_median_ns=<n>` (process CPU time, which
// on a shared, loaded machine excludes time other processes held the CPU),
// then `node_meta_version: PASS` or `MISS` against the target (under 5 us
// per call, wall clock median) and exits 1 on a miss. Run by
// scripts/bench against the installed package (release library).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Profile } = require('hydra-core');

const BATCHES = 15;
const CALLS = 20000;
const TARGET_NS = 5000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hydra-bench-'));
const p = Profile.open(dir);
for (let i = 0; i < 2000; i++) p.meta_version(); // warm up
const perCall = [];
const cpuPerCall = [];
for (let b = 0; b < BATCHES; b++) {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) p.meta_version();
  const cpu = process.cpuUsage(cpuStart);
  cpuPerCall.push(((cpu.user + cpu.system) * 1000) / CALLS);
  perCall.push(Number(process.hrtime.bigint() - start) / CALLS);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const wall = median(perCall);
const cpu = median(cpuPerCall);
console.log(`node_meta_version_median_ns=${wall.toFixed(0)}`);
console.log(`node_meta_version_cpu_median_ns=${cpu.toFixed(0)}`);
const verdict = wall < TARGET_NS ? 'PASS' : 'MISS';
const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(
  `node_meta_version: ${verdict} (${(wall / 1000).toFixed(2)} us wall, ${(cpu / 1000).toFixed(2)} us CPU, ` +
    `target < ${TARGET_NS / 1000} us; load ${load})`,
);
p.close().then(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = verdict === 'PASS' ? 0 : 1;
});
