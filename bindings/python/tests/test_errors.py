"""Each error code raises its own subclass of HydraError, so a caller can
catch ``NotFoundError`` instead of comparing strings."""

import subprocess

import pytest

import hydra_core
from hydra_core import HydraError


def test_every_code_of_the_registry_has_its_class():
    codes = list(hydra_core.ERROR_CLASSES)
    assert len(codes) >= 24
    for code in codes:
        err = HydraError.for_code(code, "m", {"field": "x"})
        cls = hydra_core.ERROR_CLASSES[code]
        assert type(err) is cls and isinstance(err, HydraError)
        assert (err.code, err.message, err.details) == (code, "m", {"field": "x"})
        assert cls.__name__ == "".join(p.capitalize() for p in code.split("_")) + "Error"
        assert getattr(hydra_core, cls.__name__) is cls
    assert type(HydraError.for_code("some_future_code", "m")) is HydraError


def test_envelopes_from_the_library_raise_the_class_of_their_code(profile, tmp_path):
    cases = [
        (hydra_core.InvalidJsonError, lambda: profile.call("meta.version", "{")),
        (hydra_core.InvalidArgumentError, lambda: profile.meta_version(bogus=1)),
        (hydra_core.UnknownOperationError, lambda: profile.call("nope.nope")),
        (hydra_core.NotFoundError, lambda: profile.threads_get(id="missing")),
        (hydra_core.FilterRequiredError, lambda: profile.history_purge()),
        (hydra_core.NoHandlerError, lambda: profile.refresh_focused_crawl()),
        (hydra_core.ProfileLockedError, lambda: hydra_core.Profile.open(profile.profile_info()["profile_dir"])),
        (hydra_core.PayloadTooLargeError, lambda: profile.call("meta.version", b"{" + b" " * (17 << 20) + b"}")),
    ]
    for cls, fn in cases:
        with pytest.raises(cls) as caught:
            fn()
        assert caught.value.code == cls.code_name
    with pytest.raises(hydra_core.InvalidArgumentError) as caught:
        profile.threads_create(title=5)
    assert caught.value.details["field"] == "title"


def test_a_closed_handle_raises_closed_error(tmp_path):
    p = hydra_core.Profile.open(tmp_path)
    handle = p.handle
    p.close()
    p.close()  # twice is fine
    p.handle = handle
    with pytest.raises(hydra_core.ClosedError):
        p.meta_version()
    p.handle = 0
