'use strict';
// Smoke test of the Node (koffi) binding: open, call, errors, close.
// Run: node examples/node/smoke.js (after cargo build and scripts/setup), or
// with NODE_PATH naming the node_modules of an installed hydra-core.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
let hydra;
try {
  hydra = require('hydra-core');
} catch (_) {
  hydra = require('../../bindings/node');
}

let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    passed += 1;
  } catch (e) {
    failed += 1;
    console.log(`FAILED: ${name}: ${e.message}`);
  }
}
function code(fn) {
  try {
    fn();
  } catch (e) {
    return e.code;
  }
  return null;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hydra-node-'));
const profile = hydra.Profile.open(dir);
const v = profile.meta_version();
check('version', () => assert.strictEqual(v.version, hydra.version()));
check('schema', () => assert.ok(v.schema_version >= 1));
check('ops', () => assert.ok(profile.meta_operations().items.some((o) => o.name === 'profile.info')));
check('unknown field', () => assert.strictEqual(code(() => profile.call('meta.version', { x: 1 })), 'invalid_argument'));
check('invalid json', () => assert.strictEqual(code(() => profile.call('meta.version', '{')), 'invalid_json'));
check('unknown op', () => assert.strictEqual(code(() => profile.call('nope.nope')), 'unknown_operation'));
check('locked', () => assert.strictEqual(code(() => hydra.Profile.open(dir)), 'profile_locked'));
profile.registerModel((req) => ({ content: `echo: ${req.message}`, model: 'node' }));
check('model answered', () => assert.strictEqual(profile.chat({ message: 'hi' }).assistant_message.content, 'echo: hi'));
profile.registerModel(null);
check('no model', () => assert.strictEqual(profile.chat({ message: 'quiet' }).assistant_message, null));

async function jobsThroughWorkerThreads() {
  // Job handlers and events run on library worker threads; koffi hands them
  // to this thread's event loop, so the waiting call must be async.
  const events = [];
  profile.setEventCallback((e) => events.push(e));
  profile.registerJobHandler('focused_crawl', (job) => ({ pages: 2, query: job.payload.query }));
  const { job_id: jobId } = profile.refresh_focused_crawl({ query: 'rail' });
  const job = await profile.jobs.wait(jobId);
  check('host job', () => assert.deepStrictEqual([job.status, job.result], ['succeeded', { pages: 2, query: 'rail' }]));
  for (let i = 0; i < 200 && !events.some((e) => e.job.id === jobId && e.job.status === 'succeeded'); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  check('events', () => assert.ok(events.some((e) => e.type === 'job.updated' && e.job.status === 'succeeded')));
  profile.registerJobHandler('focused_crawl', null);
  profile.setEventCallback(null);
  // The embedder also runs on a worker thread: documents.embed waits async.
  profile.documents_upsert({ url: 'https://node.example/', text: 'Electric trains.' });
  profile.registerEmbedder((req) => ({ vectors: req.texts.map((t) => [1, t.length]) }));
  const embedded = await profile.callAsync('documents.embed', { model: 'node', wait: true });
  check('embedder', () => assert.deepStrictEqual([embedded.embedded, embedded.failed], [1, 0]));
  const hits = profile.documents_search({ query: 'trains', embedding: { model: 'node', vector: [1, 16] } });
  check('document search', () => assert.strictEqual(hits.items[0].vector_rank, 1));
  profile.registerEmbedder(null);
}

async function main() {
  await jobsThroughWorkerThreads();
  const handle = profile.handle;
  await profile.close();
  check('closed', () => {
    const stale = Object.create(hydra.Profile.prototype);
    Object.defineProperty(stale, '_handle', { value: handle });
    assert.strictEqual(code(() => stale.call('meta.version')), 'closed');
  });
  const again = hydra.Profile.open(dir);
  check('reopen', () => assert.strictEqual(again.meta_version().version, v.version));
  await again.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`node: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`node: FAILED: ${e.stack || e}`);
  process.exit(1);
});
