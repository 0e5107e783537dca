'use strict';
// Node binding of hydra_core over koffi.
//
//   const { Profile } = require('hydra-core');
//   const p = Profile.open('/tmp/profile');
//   p.visits_record({ url: 'https://example.com/' });
//   const { job_id } = p.bundle_export({});
//   const job = await p.jobs.wait(job_id);
//   await p.close();
//
// Every operation of the registry is a method (built from generated.js,
// declared with its types in index.d.ts). Calls run on the JavaScript
// thread, except those that can wait on a JavaScript callback (a job
// handler or the event callback run on library threads and are handed to
// this thread by koffi): `jobs.wait`, `profile.jobs.wait()` and `close()`
// run on a libuv worker and return promises, so no handler can deadlock.
//
// The library is the prebuilt one shipped in prebuilds/<platform>-<arch>/,
// or $HYDRA_CORE_LIB.

const fs = require('fs');
const path = require('path');
const koffi = require('koffi');
const { OPERATIONS } = require('./generated');

const LIB_FILE = { darwin: 'libhydra_core.dylib', win32: 'hydra_core.dll' }[process.platform] || 'libhydra_core.so';
/** The largest wait one jobs.wait call may ask for (the contract's range). */
const MAX_WAIT_MS = 3600000;

function findLibrary() {
  if (process.env.HYDRA_CORE_LIB) return process.env.HYDRA_CORE_LIB;
  const prebuilt = path.join(__dirname, 'prebuilds', `${process.platform}-${process.arch}`, LIB_FILE);
  if (fs.existsSync(prebuilt)) return prebuilt;
  // A checkout: the most recently built library.
  const root = path.resolve(__dirname, '..', '..');
  const built = ['release', 'debug']
    .map((profile) => path.join(root, 'target', profile, LIB_FILE))
    .filter((candidate) => fs.existsSync(candidate))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (built.length) return built[0];
  throw new Error(`hydra-core: no prebuilt ${LIB_FILE} for ${process.platform}-${process.arch}; set HYDRA_CORE_LIB`);
}

const lib = koffi.load(findLibrary());
const stringFree = lib.func('void hydra_string_free(void *s)');
// Strings the library returns are owned by the caller: koffi copies them to
// JS strings and then releases them with hydra_string_free.
const HydraString = koffi.disposable('HydraString', 'str', stringFree);

const native = {
  open: lib.func('uint64_t hydra_open(const char *options_json, _Out_ void **error_json_out)'),
  close: lib.func('hydra_close', HydraString, ['uint64_t', 'const char *']),
  call: lib.func('hydra_call', HydraString, ['uint64_t', 'const char *', 'const char *']),
  version: lib.func('const char *hydra_version()'),
  // Callback replies are allocated by the library itself: no libc needed.
  stringAlloc: lib.func('void *hydra_string_alloc(const char *s)'),
};

/** typedef char *(*hydra_json_fn)(const char *json, void *user_data); */
const JsonFn = koffi.proto('void *hydra_json_fn(const char *json, void *user_data)');
/** typedef void (*hydra_event_fn)(const char *json, void *user_data); */
const EventFn = koffi.proto('void hydra_event_fn(const char *json, void *user_data)');

class HydraError extends Error {
  constructor(code, message, details) {
    super(`${code}: ${message}`);
    this.name = 'HydraError';
    this.code = code;
    this.details = details || {};
  }
}

// How every success envelope starts (the library writes `ok` first): its
// data is parsed without building the envelope around it.
const OK_PREFIX = '{"ok":true,"data":';

function unwrap(text) {
  if (text.startsWith(OK_PREFIX)) return JSON.parse(text.slice(OK_PREFIX.length, -1));
  const envelope = JSON.parse(text);
  if (envelope.ok) return envelope.data;
  const { code, message, details } = envelope.error;
  throw new HydraError(code, message, details);
}

function encode(request) {
  if (request === undefined || request === null) return '{}';
  return typeof request === 'string' ? request : JSON.stringify(request);
}

/** A hydra_json_fn: fn(request) -> reply. A thrown HydraError reports its
 * code; anything else is reported on stderr and becomes `internal`. */
function jsonCallback(fn, what) {
  return (text) => {
    let reply;
    try {
      reply = fn(JSON.parse(text));
    } catch (e) {
      if (!(e instanceof HydraError)) console.error(`hydra-core: the ${what} threw:`, e);
      reply = { error: { code: e instanceof HydraError ? e.code : 'internal', message: String((e && e.message) || e) } };
    }
    return native.stringAlloc(JSON.stringify(reply === undefined ? null : reply));
  };
}

function eventCallback(fn) {
  return (text) => {
    try {
      fn(JSON.parse(text));
    } catch (e) {
      console.error('hydra-core: the event callback threw:', e); // must not unwind into the library
    }
  };
}

/** Profiles not closed yet: closed (awaited) when the event loop empties,
 * so a program that forgets close() still exits cleanly. */
const open = new Set();
process.on('beforeExit', () => {
  for (const profile of open) profile.close().catch(() => {});
});

class Jobs {
  constructor(profile) {
    this._profile = profile;
  }

  /** Resolves with the finished job. Without timeoutMs it waits as long as
   * the job runs; with it, rejects with code `timeout`. */
  async wait(jobId, { timeoutMs } = {}) {
    let remaining = timeoutMs;
    for (;;) {
      const chunk = remaining === undefined ? MAX_WAIT_MS : Math.max(1, Math.min(remaining, MAX_WAIT_MS));
      try {
        return (await this._profile.callAsync('jobs.wait', { id: jobId, timeout_ms: chunk })).job;
      } catch (e) {
        if (!(e instanceof HydraError) || e.code !== 'timeout' || (remaining !== undefined && remaining <= chunk)) throw e;
        if (remaining !== undefined) remaining -= chunk;
      }
    }
  }
}

class Profile {
  constructor(handle) {
    Object.defineProperty(this, '_handle', { value: handle, writable: true });
    Object.defineProperty(this, '_callbacks', { value: [] }); // kept alive until close
    Object.defineProperty(this, '_closing', { value: null, writable: true });
    this.jobs = new Jobs(this);
    open.add(this);
  }

  /** Opens (creating or migrating) the profile in `profileDir`. */
  static open(profileDir, options = {}) {
    const errOut = [null];
    const handle = native.open(JSON.stringify({ profile_dir: profileDir, ...options }), errOut);
    if (handle === 0n || handle === 0) {
      const text = koffi.decode(errOut[0], 'char', -1);
      stringFree(errOut[0]);
      unwrap(text);
      throw new HydraError('internal', 'open failed without an error envelope');
    }
    return new Profile(handle);
  }

  /** The handle number (0 once closed). */
  get handle() {
    return this._handle;
  }

  /** Runs any operation by name; returns its data or throws HydraError. */
  call(op, request) {
    return unwrap(native.call(this._handle, op, encode(request)));
  }

  /** The same call on a libuv worker thread: callbacks keep running. */
  callAsync(op, request) {
    return new Promise((resolve, reject) => {
      native.call.async(this._handle, op, encode(request), (err, text) => {
        if (err) return reject(err);
        try {
          resolve(unwrap(text));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /** Every item of a paged list, following next_cursor. */
  *iterate(op, request = {}) {
    const pageRequest = { ...request };
    for (;;) {
      const page = this.call(op, pageRequest);
      yield* page.items;
      if (!page.next_cursor) return;
      pageRequest.cursor = page.next_cursor;
    }
  }

  /** fn({thread_id, message, context}) -> {content, model?, tokens?}; answers
   * `chat` turns on the calling thread. null unregisters. */
  registerModel(fn) {
    this._register('hydra_register_model', [], fn && jsonCallback(fn, 'model callback'), JsonFn);
  }

  /** fn({model, texts}) -> {vectors} (one vector per text); embeds chunks
   * for `documents_embed` jobs (on this thread, handed over by koffi from a
   * library worker). null unregisters. */
  registerEmbedder(fn) {
    this._register('hydra_register_embedder', [], fn && jsonCallback(fn, 'embedder'), JsonFn);
  }

  /** fn(job) -> result; runs jobs of `jobType` (on this thread, handed over
   * by koffi from a library worker). null unregisters. */
  registerJobHandler(jobType, fn) {
    this._register('hydra_register_job_handler', [jobType], fn && jsonCallback(fn, `job handler of ${jobType}`), JsonFn);
  }

  /** fn({type: 'job.updated', job}) on every job change. null unregisters. */
  setEventCallback(fn) {
    this._register('hydra_set_event_callback', [], fn && eventCallback(fn), EventFn);
  }

  _register(symbol, args, callback, proto) {
    const types = ['uint64_t', ...args.map(() => 'const char *'), koffi.pointer(proto), 'void *'];
    const register = lib.func(symbol, HydraString, types);
    const cb = callback ? koffi.register(callback, koffi.pointer(proto)) : null;
    try {
      unwrap(register(this._handle, ...args, cb, null));
    } catch (e) {
      if (cb) koffi.unregister(cb);
      throw e;
    }
    // Replaced callbacks stay registered until close: a worker thread may
    // still be inside one.
    if (cb) this._callbacks.push(cb);
  }

  /** Closes the profile off the JavaScript thread, so running JavaScript
   * job handlers finish; resolves once it is closed. Closing twice is fine. */
  close(options = {}) {
    if (this._closing) return this._closing;
    if (!this._handle) return Promise.resolve();
    const handle = this._handle;
    this._closing = new Promise((resolve, reject) => {
      native.close.async(handle, JSON.stringify(options), (err, text) => {
        try {
          if (err) throw err;
          unwrap(text);
        } catch (e) {
          this._closing = null; // refused options: still open
          return reject(e);
        }
        this._handle = 0;
        open.delete(this);
        // Every library thread that could call them has ended.
        for (const cb of this._callbacks.splice(0)) koffi.unregister(cb);
        resolve();
      });
    });
    return this._closing;
  }
}

// One method per operation, from the registry (generated.js); `jobs.wait`
// returns a promise (it waits on job handlers that may need this thread).
for (const op of OPERATIONS) {
  const name = op.name;
  Profile.prototype[op.method] =
    name === 'jobs.wait'
      ? function (request) {
          return this.callAsync(name, request);
        }
      : function (request) {
          return this.call(name, request);
        };
  if (op.paged) {
    Profile.prototype[`iter_${op.method}`] = function (request) {
      return this.iterate(name, request);
    };
  }
}

module.exports = {
  Profile,
  HydraError,
  /** The library version. */
  version: () => native.version(),
};
