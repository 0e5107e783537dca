'use strict';
// Per-call overhead of the Node binding: `profile.meta_version()` (encode,
// koffi call, decode, free, unwrap) as a user calls it. Prints the median of
// 15 batches of 20,000 calls as `node_meta_version_median_ns=<n>` (wall
// clock) and `node_meta_version_cpu_median_ns=<n>` (process CPU time, which
// on a shared, loaded machine excludes time other processes held the CPU). Run by
// scripts/bench against the installed package (release library).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Profile } = require('hydra-core');

const BATCHES = 15;
const CALLS = 20000;
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
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(0);
console.log(`node_meta_version_median_ns=${median(perCall)}`);
console.log(`node_meta_version_cpu_median_ns=${median(cpuPerCall)}`);
p.close().then(() => fs.rmSync(dir, { recursive: true, force: true }));
