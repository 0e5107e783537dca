'use strict';
// Smoke test of the Node (koffi) binding: open, call, errors, close.
// Run: node examples/node/smoke.js  (after cargo build and scripts/setup-node)
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const hydra = require('../../bindings/node');

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
const handle = profile.handle;
profile.close();
check('closed', () => {
  const stale = Object.create(hydra.Profile.prototype);
  stale.handle = handle;
  assert.strictEqual(code(() => stale.call('meta.version')), 'closed');
});
const again = hydra.Profile.open(dir);
check('reopen', () => assert.strictEqual(again.meta_version().version, v.version));
again.close();
fs.rmSync(dir, { recursive: true, force: true });
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
