'use strict';
// Node binding of hydra_core over koffi.
//
// Loads libhydra_core ($HYDRA_CORE_LIB, else the most recently built of
// target/release and target/debug in this checkout) and exposes every operation of the library's registry:
// profile.call('threads.create', {...}) or, derived from meta.operations at
// open, profile.threads_create({...}). Errors throw HydraError with the
// envelope's code, message and details.

const fs = require('fs');
const path = require('path');
const koffi = require('koffi');

function findLibrary() {
  if (process.env.HYDRA_CORE_LIB) return process.env.HYDRA_CORE_LIB;
  const root = path.resolve(__dirname, '..', '..');
  const built = ['release', 'debug']
    .map((profile) => path.join(root, 'target', profile, 'libhydra_core.so'))
    .filter((candidate) => fs.existsSync(candidate))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (built.length) return built[0]; // the most recently built one
  throw new Error('libhydra_core.so not found: build it (cargo build) or set HYDRA_CORE_LIB');
}

const lib = koffi.load(findLibrary());
const libc = koffi.load('libc.so.6');

const stringFree = lib.func('void hydra_string_free(void *s)');
// Strings the library returns are owned by the caller: koffi copies them to
// JS strings and then releases them with hydra_string_free.
const HydraString = koffi.disposable('HydraString', 'str', stringFree);

const native = {
  open: lib.func('uint64_t hydra_open(const char *options_json, _Out_ void **error_json_out)'),
  close: lib.func('hydra_close', HydraString, ['uint64_t', 'const char *']),
  call: lib.func('hydra_call', HydraString, ['uint64_t', 'const char *', 'const char *']),
  version: lib.func('const char *hydra_version()'),
  strdup: libc.func('void *strdup(const char *s)'),
};

/** typedef char *(*hydra_json_fn)(const char *json, void *user_data); */
const JsonFn = koffi.proto('void *hydra_json_fn(const char *json, void *user_data)');
/** typedef void (*hydra_event_fn)(const char *json, void *user_data); */
const EventFn = koffi.proto('void hydra_event_fn(const char *json, void *user_data)');

function jsonCallback(fn) {
  return (text) => {
    let reply;
    try {
      reply = fn(JSON.parse(text));
    } catch (e) {
      reply = { error: { code: e instanceof HydraError ? e.code : 'internal', message: String(e.message || e) } };
    }
    return mallocJson(reply);
  };
}

function eventCallback(fn) {
  return (text) => {
    try {
      fn(JSON.parse(text));
    } catch (_) {
      // An event sink must not unwind into the library.
    }
  };
}

class HydraError extends Error {
  constructor(code, message, details) {
    super(`${code}: ${message}`);
    this.code = code;
    this.details = details || {};
  }
}

function unwrap(text) {
  const envelope = JSON.parse(text);
  if (envelope.ok) return envelope.data;
  const { code, message, details } = envelope.error;
  throw new HydraError(code, message, details);
}

function encode(request) {
  if (request === undefined || request === null) return '{}';
  return typeof request === 'string' ? request : JSON.stringify(request);
}

/** A JSON string allocated with malloc, as hydra_json_fn must return. */
function mallocJson(value) {
  return native.strdup(JSON.stringify(value));
}

class Profile {
  constructor(handle) {
    this.handle = handle;
    this.callbacks = new Map(); // registered koffi callbacks, kept alive
    for (const op of this.call('meta.operations').items) {
      this[op.name.replace(/\./g, '_')] = (request) => this.call(op.name, request);
    }
  }

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

  call(op, request) {
    return unwrap(native.call(this.handle, op, encode(request)));
  }

  /** The same call on a libuv worker thread; resolves with the data. Use it
   * while job handlers or the event callback (which run on library worker
   * threads and are marshalled to this thread by koffi) must stay live. */
  callAsync(op, request) {
    return new Promise((resolve, reject) => {
      native.call.async(this.handle, op, encode(request), (err, text) => {
        if (err) return reject(err);
        try {
          resolve(unwrap(text));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /** fn({thread_id, message, context}) -> {content, model?, tokens?}; answers
   * `chat` turns on the calling thread. null unregisters. */
  registerModel(fn) {
    this.register('hydra_register_model', [], fn, jsonCallback);
  }

  /** fn({model, texts}) -> {vectors} (one vector per text); embeds chunks
   * for `documents_embed` jobs (called from a library worker thread,
   * marshalled by koffi to the JS thread). null unregisters. */
  registerEmbedder(fn) {
    this.register('hydra_register_embedder', [], fn, jsonCallback);
  }

  /** fn(job) -> result; runs jobs of `jobType` (called from a library worker
   * thread, marshalled by koffi to the JS thread). null unregisters. */
  registerJobHandler(jobType, fn) {
    this.register('hydra_register_job_handler', [jobType], fn, jsonCallback);
  }

  /** fn({type: 'job.updated', job}) on every job change. null unregisters. */
  setEventCallback(fn) {
    this.register('hydra_set_event_callback', [], fn, eventCallback);
  }

  register(symbol, args, fn, wrap) {
    const proto = wrap === jsonCallback ? JsonFn : EventFn;
    const types = ['uint64_t', ...args.map(() => 'const char *'), koffi.pointer(proto), 'void *'];
    const native = lib.func(symbol, HydraString, types);
    const cb = fn ? koffi.register(wrap(fn), koffi.pointer(proto)) : null;
    unwrap(native(this.handle, ...args, cb, null));
    // Replaced callbacks stay registered until close: a worker thread may
    // still be inside one.
    if (cb) this.callbacks.set(cb, cb);
  }

  close(options = {}) {
    if (!this.handle) return;
    const handle = this.handle;
    this.handle = 0;
    unwrap(native.close(handle, JSON.stringify(options)));
    for (const cb of this.callbacks.values()) koffi.unregister(cb);
    this.callbacks.clear();
  }
}

module.exports = {
  Profile,
  HydraError,
  version: () => native.version(),
  lib,
  koffi,
  JsonFn,
  EventFn,
  HydraString,
  mallocJson,
  unwrap,
};
