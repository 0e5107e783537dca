'use strict';
// Per-call overhead of the Node binding: `profile.meta_version()` (encode,
// koffi call, decode, free, unwrap) as a user calls it. Prints the median of
// 15 batches of 20,000 calls as `node_meta_version_median_ns=<n>`. Run by
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
for (let b = 0; b < BATCHES; b++) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) p.meta_version();
  perCall.push(Number(process.hrtime.bigint() - start) / CALLS);
}
perCall.sort((a, b) => a - b);
console.log(`node_meta_version_median_ns=${perCall[Math.floor(BATCHES / 2)].toFixed(0)}`);
p.close().then(() => fs.rmSync(dir, { recursive: true, force: true }));
