"""Python binding of hydra_core over ctypes.

Loads ``libhydra_core`` (``$HYDRA_CORE_LIB``, else ``target/release`` or
``target/debug`` of this checkout) and exposes every operation of the
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
    for profile in ("release", "debug"):
        candidate = root / "target" / profile / "libhydra_core.so"
        if candidate.exists():
            return str(candidate)
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


class Profile:
    """An open profile handle. Use as a context manager or call close()."""

    def __init__(self, handle: int):
        self.handle = handle
        self._callbacks: dict = {}  # keeps ctypes callbacks alive
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

    def close(self, **options: Any) -> None:
        if self.handle:
            handle, self.handle = self.handle, 0
            _take(_lib.hydra_close(handle, json.dumps(options).encode()))

    def __enter__(self) -> "Profile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
