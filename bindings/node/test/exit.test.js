'use strict';
// Closing with callbacks registered and a JavaScript job in flight, then
// exiting, is clean: 20 fresh processes in a row, each must exit 0 with
// nothing on stderr (koffi used to abort with "FATAL ERROR ... RelayAsync").
const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SCRIPT = `
const hydra = require('hydra-core');
const dir = process.argv[1];
(async () => {
  const p = hydra.Profile.open(dir);
  p.setEventCallback(() => {});
  p.registerModel((req) => ({ content: req.message }));
  p.registerJobHandler('focused_crawl', (job) => {
    try { p.jobs_progress({ id: job.id, steps_total: 1, steps_completed: 0 }); } catch (_) {}
    return { done: true };
  });
  for (let i = 0; i < 3; i++) p.refresh_focused_crawl({ query: 'q' + i });
  p.chat({ message: 'hi' });
  await p.close({ cancel_running: true });
  // a second profile left open: closed when the event loop empties
  const q = hydra.Profile.open(dir + '-2');
  q.setEventCallback(() => {});
  q.registerJobHandler('focused_crawl', () => ({}));
  q.refresh_focused_crawl({});
})();
`;

test('20 runs of close-with-callbacks exit cleanly', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hydra-exit-'));
  for (let run = 0; run < 20; run++) {
    const out = spawnSync(process.execPath, ['-e', SCRIPT, path.join(root, `p${run}`)], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 30000,
    });
    assert.strictEqual(out.signal, null, `run ${run} killed by ${out.signal}: ${out.stderr}`);
    assert.strictEqual(out.status, 0, `run ${run} exited ${out.status}: ${out.stderr}`);
    assert.strictEqual(out.stderr, '', `run ${run}`);
  }
  fs.rmSync(root, { recursive: true, force: true });
});
