'use strict';
// The Node package as a user installs it (from the packed tarball): every
// operation is a method, errors carry their code, internals stay private,
// and a JavaScript job handler runs while `await profile.jobs.wait(id)`
// waits (the synchronous wait used to wait out its timeout instead).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const hydra = require('hydra-core');

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hydra-node-'));
}

test('the package is the installed one, with its prebuilt library and types', () => {
  const main = require.resolve('hydra-core');
  assert.ok(main.includes(`${path.sep}node_modules${path.sep}hydra-core${path.sep}`), main);
  const pkg = path.dirname(main);
  assert.ok(fs.existsSync(path.join(pkg, 'index.d.ts')));
  assert.ok(fs.readdirSync(path.join(pkg, 'prebuilds')).length > 0);
  assert.strictEqual(process.env.HYDRA_CORE_LIB, undefined);
  assert.deepStrictEqual(Object.keys(hydra).sort(), ['HydraError', 'Profile', 'version']);
});

test('every operation is a method; errors carry their code', async () => {
  const dir = tempDir();
  const p = hydra.Profile.open(dir);
  try {
    assert.strictEqual(p.meta_version().version, hydra.version());
    for (const op of p.meta_operations().items) {
      assert.strictEqual(typeof p[op.name.replace(/\./g, '_')], 'function', op.name);
    }
    const err = (fn) => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof hydra.HydraError);
        return [e.code, e.details.field];
      }
      return null;
    };
    assert.deepStrictEqual(err(() => p.threads_create({ title: 5 })), ['invalid_argument', 'title']);
    assert.deepStrictEqual(err(() => p.call('nope.nope')), ['unknown_operation', undefined]);
    assert.deepStrictEqual(err(() => hydra.Profile.open(dir))[0], 'profile_locked');
    p.visits_record_batch({ visits: [1, 2, 3, 4, 5].map((i) => ({ url: `https://h${i}.com/`, visited_at: 1700000000000 + i })) });
    const urls = [...p.iter_history_list({ limit: 2 })].map((v) => v.url);
    assert.strictEqual(new Set(urls).size, 5);
    p.registerModel((req) => ({ content: `echo: ${req.message}` }));
    assert.strictEqual(p.chat({ message: 'hi' }).assistant_message.content, 'echo: hi');
  } finally {
    await p.close();
  }
});

test('a JavaScript job handler completes while jobs.wait is awaited', async () => {
  const p = hydra.Profile.open(tempDir());
  const events = [];
  p.setEventCallback((e) => events.push(e.job.status));
  let ran = 0;
  p.registerJobHandler('focused_crawl', (job) => {
    ran += 1;
    p.jobs_progress({ id: job.id, steps_total: 2, steps_completed: 1 });
    return { pages: 2, query: job.payload.query };
  });
  const { job_id: jobId } = p.refresh_focused_crawl({ query: 'rail' });
  const job = await p.jobs.wait(jobId);
  assert.strictEqual(ran, 1);
  assert.deepStrictEqual([job.status, job.result], ['succeeded', { pages: 2, query: 'rail' }]);
  const raw = await p.jobs_wait({ id: jobId, timeout_ms: 1000 });
  assert.strictEqual(raw.job.status, 'succeeded');
  await p.close();
  assert.ok(events.includes('succeeded'), events.join());
  assert.strictEqual(p.handle, 0);
  await p.close(); // twice is fine
});

test('jobs.wait with a timeout rejects with code timeout', async () => {
  const p = hydra.Profile.open(tempDir());
  p.registerJobHandler('focused_crawl', () => {
    const until = Date.now() + 300;
    while (Date.now() < until); // a slow handler on this thread
    return {};
  });
  const { job_id: jobId } = p.refresh_focused_crawl({});
  await assert.rejects(p.jobs.wait(jobId, { timeoutMs: 20 }), (e) => e.code === 'timeout');
  assert.strictEqual((await p.jobs.wait(jobId)).status, 'succeeded');
  await p.close();
});

test('close lets an in-flight JavaScript job finish instead of hanging', async () => {
  const p = hydra.Profile.open(tempDir());
  let finished = false;
  p.registerJobHandler('focused_crawl', () => {
    finished = true;
    return { ok: true };
  });
  const { job_id: id } = p.refresh_focused_crawl({});
  // In flight: a worker has started the job and waits for this thread to
  // run the handler (queued jobs stay queued at close, as the contract
  // says, so closing before a worker took it would test nothing). The
  // handler cannot run while this loop holds the thread.
  const deadline = Date.now() + 10_000;
  while (p.jobs_get({ id }).job.status === 'queued') {
    assert.ok(Date.now() < deadline, 'no worker started the job');
  }
  assert.strictEqual(p.jobs_get({ id }).job.status, 'running');
  await p.close();
  assert.ok(finished);
});
