"""Python binding of hydra_core over ctypes.

Loads ``libhydra_core`` (``$HYDRA_CORE_LIB``, else the most recently built
of ``target/release`` and ``target/debug`` in this checkout) and exposes every operation of the
library's registry: ``profile.call("threads.create", {...})`` or, derived from
``meta.operations`` at open, ``profile.threads_create({...})``. Errors raise
:class:`HydraError` carrying the envelope's ``code``, ``message`` and
``details``.

    with Profile.open("/tmp/profile") as p:
        print(p.meta_version())
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

_HERE = Path(__file__).resolve().parent


def _find_library() -> str:
    explicit = os.environ.get("HYDRA_CORE_LIB")
    if explicit:
        return explicit
    root = _HERE.parent.parent
    built = [root / "target" / p / "libhydra_core.so" for p in ("release", "debug")]
    built = [b for b in built if b.exists()]
    if built:  # the most recently built one
        return str(max(built, key=lambda b: b.stat().st_mtime))
    raise OSError("libhydra_core.so not found: build it (cargo build) or set HYDRA_CORE_LIB")


_lib = ctypes.CDLL(_find_library())
_libc = ctypes.CDLL(None)

# Returned strings are owned by the caller: keep them as void pointers so
# ctypes does not copy-and-lose them, then free with hydra_string_free.
_lib.hydra_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.hydra_open.restype = ctypes.c_uint64
_lib.hydra_close.argtypes = [ctypes.c_uint64, ctypes.c_char_p]
_lib.hydra_close.restype = ctypes.c_void_p
_lib.hydra_call.argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p]
_lib.hydra_call.restype = ctypes.c_void_p
_lib.hydra_string_free.argtypes = [ctypes.c_void_p]
_lib.hydra_string_free.restype = None
_lib.hydra_version.argtypes = []
_lib.hydra_version.restype = ctypes.c_char_p
_libc.strdup.argtypes = [ctypes.c_char_p]
_libc.strdup.restype = ctypes.c_void_p

#: ``typedef char *(*hydra_json_fn)(const char *json, void *user_data);``
JSON_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
#: ``typedef void (*hydra_event_fn)(const char *json, void *user_data);``
EVENT_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)


class HydraError(Exception):
    """An error envelope: ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str, details: dict):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


def version() -> str:
    """The library version (static string)."""
    return _lib.hydra_version().decode()


def _take(ptr: Optional[int]) -> Any:
    """Reads and frees an envelope; returns its data or raises HydraError."""
    if not ptr:
        raise HydraError("internal", "the library returned NULL", {})
    try:
        envelope = json.loads(ctypes.string_at(ptr).decode("utf-8"))
    finally:
        _lib.hydra_string_free(ptr)
    if envelope["ok"]:
        return envelope["data"]
    err = envelope["error"]
    raise HydraError(err["code"], err["message"], err.get("details", {}))


def _encode(request: Any) -> bytes:
    if request is None:
        return b"{}"
    if isinstance(request, (bytes, bytearray)):
        return bytes(request)
    if isinstance(request, str):
        return request.encode("utf-8")
    return json.dumps(request).encode("utf-8")


def _malloc_json(value: Any) -> Optional[int]:
    """A JSON string allocated with malloc, as hydra_json_fn must return."""
    return _libc.strdup(json.dumps(value).encode("utf-8"))


def _json_callback(fn: Callable[[Any], Any]) -> Any:
    """Wraps ``fn(request) -> reply`` as a ``hydra_json_fn``. Raising
    HydraError reports that code; any other exception reports ``internal``."""

    def trampoline(text: bytes, _user_data: int) -> Optional[int]:
        try:
            reply = fn(json.loads(text.decode("utf-8")))
        except HydraError as e:
            reply = {"error": {"code": e.code, "message": e.message}}
        except Exception as e:  # the host's failure, reported to the library
            reply = {"error": {"code": "internal", "message": f"{type(e).__name__}: {e}"}}
        return _malloc_json(reply)

    return JSON_FN(trampoline)


def _event_callback(fn: Callable[[Any], None]) -> Any:
    def trampoline(text: bytes, _user_data: int) -> None:
        try:
            fn(json.loads(text.decode("utf-8")))
        except Exception:  # an event sink must not unwind into the library
            pass

    return EVENT_FN(trampoline)


def _native(name: str, argtypes: list) -> Any:
    """A registration function, bound on first use."""
    fn = getattr(_lib, name)
    fn.argtypes = argtypes
    fn.restype = ctypes.c_void_p
    return fn


class Profile:
    """An open profile handle. Use as a context manager or call close()."""

    def __init__(self, handle: int):
        self.handle = handle
        # Every callback ever registered stays alive with the handle: a worker
        # thread may still be inside a replaced one.
        self._callbacks: list = []
        for op in self.call("meta.operations")["items"]:
            name = op["name"]
            setattr(self, name.replace(".", "_"), self._bind(name, op["summary"]))

    @classmethod
    def open(cls, profile_dir: str, **options: Any) -> "Profile":
        err = ctypes.c_void_p()
        request = json.dumps({"profile_dir": str(profile_dir), **options}).encode()
        handle = _lib.hydra_open(request, ctypes.byref(err))
        if handle == 0:
            _take(err.value)
            raise HydraError("internal", "open failed without an error envelope", {})
        return cls(handle)

    def _bind(self, name: str, summary: str) -> Callable[..., Any]:
        def op(request: Any = None, **fields: Any) -> Any:
            return self.call(name, request if request is not None else fields)

        op.__name__ = name.replace(".", "_")
        op.__doc__ = summary
        return op

    def call(self, op: str, request: Any = None) -> Any:
        """Runs operation ``op`` with a dict (or JSON text) request."""
        return _take(_lib.hydra_call(self.handle, op.encode("utf-8"), _encode(request)))

    def register_model(self, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn({thread_id, message, context}) -> {content, model?, tokens?}``
        to answer ``chat`` turns (on the calling thread); None unregisters."""
        native = _native("hydra_register_model", [ctypes.c_uint64, JSON_FN, ctypes.c_void_p])
        cb = _json_callback(fn) if fn else JSON_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def register_embedder(self, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn({model, texts}) -> {vectors}`` (one vector per text)
        for ``documents_embed`` jobs (on a worker thread); None unregisters."""
        native = _native("hydra_register_embedder", [ctypes.c_uint64, JSON_FN, ctypes.c_void_p])
        cb = _json_callback(fn) if fn else JSON_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def register_job_handler(self, job_type: str, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn(job) -> result`` to run jobs of ``job_type`` on a
        worker thread (it may call ``jobs.progress``); None unregisters."""
        native = _native("hydra_register_job_handler", [ctypes.c_uint64, ctypes.c_char_p, JSON_FN, ctypes.c_void_p])
        cb = _json_callback(fn) if fn else JSON_FN()
        _take(native(self.handle, job_type.encode("utf-8"), cb, None))
        self._callbacks.append(cb)

    def set_event_callback(self, fn: Optional[Callable[[Any], None]]) -> None:
        """Receives ``{"type": "job.updated", "job": {...}}`` from worker threads."""
        native = _native("hydra_set_event_callback", [ctypes.c_uint64, EVENT_FN, ctypes.c_void_p])
        cb = _event_callback(fn) if fn else EVENT_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def close(self, **options: Any) -> None:
        if self.handle:
            handle, self.handle = self.handle, 0
            _take(_lib.hydra_close(handle, json.dumps(options).encode()))

    def __enter__(self) -> "Profile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
