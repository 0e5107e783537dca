"""The native library and its C signatures (``include/hydra_core.h``).

Loaded from ``$HYDRA_CORE_LIB`` when set, else from this package's folder,
where ``pip install`` put it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

LIB_NAME = "libhydra_core.dylib" if sys.platform == "darwin" else "libhydra_core.so"


def library_path() -> str:
    explicit = os.environ.get("HYDRA_CORE_LIB")
    if explicit:
        return explicit
    bundled = Path(__file__).resolve().parent / LIB_NAME
    if bundled.exists():
        return str(bundled)
    raise OSError(f"{LIB_NAME} is not installed with this package: reinstall it or set HYDRA_CORE_LIB")


lib = ctypes.CDLL(library_path())


class OwnedString(ctypes.c_char_p):
    """A string the library returned: the caller owns it and frees it with
    ``hydra_string_free``. A subclass of ``c_char_p``, so ctypes keeps the
    pointer (``.value`` reads the text, ``None`` for NULL) instead of
    converting it and losing it."""


# Returned strings are owned by the caller: they come back as OwnedString
# (the pointer kept), are read with ``.value`` and freed with
# hydra_string_free.
lib.hydra_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(OwnedString)]
lib.hydra_open.restype = ctypes.c_uint64
lib.hydra_close.argtypes = [ctypes.c_uint64, ctypes.c_char_p]
lib.hydra_close.restype = OwnedString
lib.hydra_call.argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p]
lib.hydra_call.restype = OwnedString
lib.hydra_string_free.argtypes = [ctypes.c_void_p]
lib.hydra_string_free.restype = None
lib.hydra_string_alloc.argtypes = [ctypes.c_char_p]
lib.hydra_string_alloc.restype = ctypes.c_void_p
lib.hydra_version.argtypes = []
lib.hydra_version.restype = ctypes.c_char_p

# The per-call path (see benches/bindings_meta_version.py) uses function
# objects of their own without ``argtypes``: ctypes then passes arguments
# that already have their C type (a ``c_uint64`` handle, ``bytes`` as
# ``const char *``, an OwnedString as ``char *``) with no per-argument
# conversion call. Their callers pass only those types.

#: ``hydra_string_free(char *)`` for an OwnedString.
free_owned = lib["hydra_string_free"]
free_owned.restype = None


def operation_function(op: str) -> Any:
    """The C function of operation ``op`` (``hydra_meta_version`` for
    ``meta.version``), called as ``fn(c_uint64(handle), request_bytes)``;
    None when this library has none (an older library named by
    ``HYDRA_CORE_LIB``). Only for names of the registry: another name could
    be any symbol."""
    try:
        fn = lib["hydra_" + op.replace(".", "_")]
    except AttributeError:
        return None
    fn.restype = OwnedString
    return fn


def generic_function(op: str) -> Any:
    """``hydra_call`` with the operation name fixed, called like
    :func:`operation_function`'s functions (for any name: the library
    answers ``unknown_operation`` for one it does not know)."""
    name, call = op.encode("utf-8"), lib["hydra_call"]
    call.restype = OwnedString
    return lambda handle, body: call(handle, name, body)


#: ``typedef char *(*hydra_json_fn)(const char *json, void *user_data);``
JSON_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
#: ``typedef void (*hydra_event_fn)(const char *json, void *user_data);``
EVENT_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)


def registration(name: str, argtypes: list) -> Any:
    """A registration function of the C ABI (returns an envelope)."""
    fn = getattr(lib, name)
    fn.argtypes = argtypes
    fn.restype = OwnedString
    return fn


class HydraError(Exception):
    """An error envelope: ``code`` is stable, ``message`` is for people,
    ``details`` may name the field at fault (``details["field"]``).

    Each code has its own subclass (``NotFoundError`` for ``not_found``, ...);
    ``HydraError.for_code(code, ...)`` builds the right one."""

    #: The code of this class (set on each subclass).
    code_name: str = ""
    _by_code: Dict[str, type] = {}

    def __init__(self, code: str, message: str, details: Optional[dict] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code_name:
            HydraError._by_code[cls.code_name] = cls

    @staticmethod
    def for_code(code: str, message: str, details: Optional[dict] = None) -> "HydraError":
        """The subclass of ``code`` (plain :class:`HydraError` for a code this
        binding does not know yet)."""
        return HydraError._by_code.get(code, HydraError)(code, message, details)
