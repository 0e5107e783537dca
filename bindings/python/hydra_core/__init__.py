"""Python binding of hydra_core over ctypes.

    import hydra_core

    with hydra_core.Profile.open("/tmp/profile") as p:
        print(p.meta_version()["version"])
        for visit in p.iter_history_list({"limit": 100}, host="example.com"):
            ...

Every operation of the library's registry is a method of :class:`Profile`
(generated into ``_generated.py`` from ``meta.operations``, with
``TypedDict`` request and response types): ``p.history_list(...)`` takes a
dict, keyword fields, or both (a key given both ways is refused, never
dropped). A paged list also has ``iter_<op>``, which follows
``next_cursor``. Errors raise the subclass of :class:`HydraError` of their
code (``NotFoundError``, ``InvalidArgumentError``, ...).

The native library ships inside the package (``pip install
./bindings/python``); ``HYDRA_CORE_LIB`` names another one.
"""

from __future__ import annotations

import ctypes
import json
import logging
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

from . import _native
from ._generated import *  # noqa: F401,F403  (error classes, TypedDicts)
from ._generated import OPERATION_NAMES, Operations
from ._native import EVENT_FN, JSON_FN, HydraError

__all__ = ["Profile", "Jobs", "HydraError", "version", "JSON_FN", "EVENT_FN"] + [
    name for name in dir() if name.endswith("Error") and name != "HydraError"
]

#: Where failures of host callbacks are reported (a job handler or model that
#: raised, an event callback that raised).
log = logging.getLogger("hydra_core")

_lib = _native.lib
#: The largest wait one ``jobs.wait`` call may ask for (the contract's range).
_MAX_WAIT_MS = 3_600_000


def version() -> str:
    """The library version (static string)."""
    return _lib.hydra_version().decode()


#: How every success envelope starts (the library writes `ok` first): its
#: data is decoded in place, without building the envelope around it.
_OK_PREFIX = '{"ok":true,"data":'
_OK_LEN = len(_OK_PREFIX)
_decode = json.JSONDecoder().decode
#: The JSON value scanner behind ``json.loads`` (the C one when available):
#: ``_scan(text, i)`` decodes the value starting at ``i`` and returns it
#: with the index after it.
_scan = (getattr(json.scanner, "c_make_scanner", None) or json.scanner.py_make_scanner)(json.JSONDecoder())
_free_owned = _native.free_owned
_EMPTY = b"{}"


def _take(owned: Any) -> Any:
    """Reads and frees an envelope (an OwnedString); returns its data or
    raises the error."""
    raw = owned.value
    _free_owned(owned)
    if raw is None:
        raise HydraError.for_code("internal", "the library returned NULL")
    text = raw.decode()
    if text.startswith(_OK_PREFIX):
        try:
            data, end = _scan(text, _OK_LEN)
        except StopIteration:
            end = -1
        if end == len(text) - 1 and text[end] == "}":
            return data
    envelope = _decode(text)
    if envelope["ok"]:
        return envelope["data"]
    err = envelope["error"]
    raise HydraError.for_code(err["code"], err["message"], err.get("details"))


def _encode(request: Any) -> bytes:
    if request is None:
        return _EMPTY
    if isinstance(request, (bytes, bytearray)):
        return bytes(request)
    if isinstance(request, str):
        return request.encode("utf-8")
    return json.dumps(request).encode("utf-8")


#: The C function of each registry operation, bound on first use.
_functions: Dict[str, Callable[[int, bytes], Any]] = {}


def _function(op: str) -> Callable[[int, bytes], Any]:
    fn = _functions.get(op)
    if fn is None:
        if op not in OPERATION_NAMES:
            return _native.generic_function(op)
        fn = _native.operation_function(op) or _native.generic_function(op)
        _functions[op] = fn
    return fn


def _merge(request: Any, fields: Dict[str, Any]) -> Any:
    """One request from a dict and keyword fields: merged when they name
    different keys; a key named twice, or keywords beside JSON text, is a
    TypeError (a dropped field could widen a purge)."""
    if not fields:
        return request
    if request is None:
        return fields
    if not isinstance(request, Mapping):
        raise TypeError("keyword fields can only be added to a dict request, not to JSON text")
    twice = sorted(set(request) & set(fields))
    if twice:
        raise TypeError(f"field(s) given both in the request dict and as keywords: {', '.join(twice)}")
    return {**request, **fields}


def _library_string(value: Any) -> Optional[int]:
    """JSON text in memory the library owns, as a ``hydra_json_fn`` returns."""
    return _lib.hydra_string_alloc(json.dumps(value).encode("utf-8"))


def _json_callback(fn: Callable[[Any], Any], what: str) -> Any:
    """Wraps ``fn(request) -> reply`` as a ``hydra_json_fn``. A HydraError
    raised by ``fn`` reports its code; any other exception is logged on
    ``hydra_core`` and reported as ``internal``."""

    def trampoline(text: bytes, _user_data: int) -> Optional[int]:
        try:
            reply = fn(json.loads(text))
        except HydraError as e:
            reply = {"error": {"code": e.code, "message": e.message}}
        except BaseException as e:  # noqa: BLE001  (nothing may unwind into C)
            log.exception("hydra_core: the %s raised", what)
            reply = {"error": {"code": "internal", "message": f"the {what} raised {type(e).__name__}"}}
        try:
            return _library_string(reply)
        except BaseException:  # noqa: BLE001  (an unserialisable reply)
            log.exception("hydra_core: the %s returned a reply that is not JSON", what)
            return _library_string({"error": {"code": "internal", "message": f"the {what} returned a reply that is not JSON"}})

    return JSON_FN(trampoline)


def _event_callback(fn: Callable[[Any], None]) -> Any:
    def trampoline(text: bytes, _user_data: int) -> None:
        try:
            fn(json.loads(text))
        except BaseException:  # noqa: BLE001  (nothing may unwind into C)
            log.exception("hydra_core: the event callback raised")

    return EVENT_FN(trampoline)


def _close_handle(handle: int, options: bytes, _keep_alive: Any = None) -> None:
    """The finalizer of a profile nobody closed (collected, or at exit)."""
    _free_owned(_lib.hydra_close(handle, options))


class Jobs:
    """Job helpers of a profile: ``profile.jobs.wait(job_id)``."""

    def __init__(self, profile: "Profile"):
        self._profile = weakref.proxy(profile)

    def wait(self, job_id: str, timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        """Waits until the job is finished and returns it (the Job object).
        Without ``timeout_ms`` it waits as long as the job runs; with it,
        raises ``TimeoutError`` (the binding's, code ``timeout``) after that
        long. The GIL is released while waiting, so Python job handlers run."""
        remaining = timeout_ms
        while True:
            chunk = _MAX_WAIT_MS if remaining is None else max(1, min(remaining, _MAX_WAIT_MS))
            try:
                return self._profile.call("jobs.wait", {"id": job_id, "timeout_ms": chunk})["job"]
            except HydraError as e:
                if e.code != "timeout" or remaining is not None and remaining <= chunk:
                    raise
                if remaining is not None:
                    remaining -= chunk


class Profile(Operations):
    """An open profile. Use it as a context manager or call :meth:`close`;
    a profile that is collected (or still open at exit) is closed then."""

    def __init__(self, handle: int):
        self.handle = handle
        # Every callback ever registered stays alive with the handle: a
        # worker thread may still be inside a replaced one.
        self._callbacks: List[Any] = []
        self._finalizer = weakref.finalize(self, _close_handle, handle, b"{}", self._callbacks)
        self.jobs = Jobs(self)

    @property
    def handle(self) -> int:
        """The library's handle of this profile (0 once closed)."""
        return self._handle

    @handle.setter
    def handle(self, handle: int) -> None:
        self._handle = handle
        # The handle as the C functions of the per-call path take it.
        self._handle_arg = ctypes.c_uint64(handle)

    @classmethod
    def open(cls, profile_dir: Any, **options: Any) -> "Profile":
        """Opens (creating or migrating) the profile in ``profile_dir``;
        options: ``workers``, ``synchronous``, ``storage_roots``."""
        err = _native.OwnedString()
        request = json.dumps({"profile_dir": str(profile_dir), **options}).encode()
        handle = _lib.hydra_open(request, ctypes.byref(err))
        if handle == 0:
            _take(err)
            raise HydraError.for_code("internal", "open failed without an error envelope")
        return cls(handle)

    def call(self, op: str, request: Any = None, /, **fields: Any) -> Any:
        """Runs operation ``op`` with a dict (or JSON text) request, plus
        keyword fields; returns the response data."""
        return self._run(op, request, fields)

    def _run(self, op: str, request: Any, fields: Dict[str, Any]) -> Any:
        # The per-call path of every method: keep it short (no logging, no
        # locks; see benches/bindings_meta_version.py).
        if fields:
            request = _merge(request, fields)
        fn = _functions.get(op) or _function(op)
        return _take(fn(self._handle_arg, _EMPTY if request is None else _encode(request)))

    def iterate(self, op: str, request: Any = None, /, **fields: Any) -> Iterator[Any]:
        """The items of every page of the list ``op``, following ``next_cursor``."""
        page_request = dict(_merge(request, fields) or {})
        while True:
            page = self.call(op, page_request)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            page_request["cursor"] = page["next_cursor"]

    # What the generated iterators call.
    _iter = iterate

    def register_model(self, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn({thread_id, message, context}) -> {content, model?, tokens?}``
        to answer ``chat`` turns (on the calling thread); None unregisters."""
        native = _native.registration("hydra_register_model", [ctypes.c_uint64, JSON_FN, ctypes.c_void_p])
        cb = _json_callback(fn, "model callback") if fn else JSON_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def register_embedder(self, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn({model, texts}) -> {vectors}`` (one vector per text)
        for ``documents_embed`` jobs (on a worker thread); None unregisters."""
        native = _native.registration("hydra_register_embedder", [ctypes.c_uint64, JSON_FN, ctypes.c_void_p])
        cb = _json_callback(fn, "embedder") if fn else JSON_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def register_job_handler(self, job_type: str, fn: Optional[Callable[[Any], Any]]) -> None:
        """Registers ``fn(job) -> result`` to run jobs of ``job_type`` on a
        worker thread (it may call ``jobs_progress``); None unregisters."""
        native = _native.registration(
            "hydra_register_job_handler", [ctypes.c_uint64, ctypes.c_char_p, JSON_FN, ctypes.c_void_p]
        )
        cb = _json_callback(fn, f"job handler of {job_type!r}") if fn else JSON_FN()
        _take(native(self.handle, job_type.encode("utf-8"), cb, None))
        self._callbacks.append(cb)

    def set_event_callback(self, fn: Optional[Callable[[Any], None]]) -> None:
        """Receives ``{"type": "job.updated", "job": {...}}`` from a library
        thread; an exception it raises is logged on ``hydra_core``."""
        native = _native.registration("hydra_set_event_callback", [ctypes.c_uint64, EVENT_FN, ctypes.c_void_p])
        cb = _event_callback(fn) if fn else EVENT_FN()
        _take(native(self.handle, cb, None))
        self._callbacks.append(cb)

    def close(self, **options: Any) -> None:
        """Closes the profile (``cancel_running=True`` cancels running jobs).
        Closing twice does nothing."""
        if not self.handle:
            return
        _take(_lib.hydra_close(self.handle, json.dumps(options).encode()))  # refused options: still open
        self.handle = 0
        self._finalizer.detach()

    def __enter__(self) -> "Profile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
