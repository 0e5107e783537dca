"""The package runs from where pip installed it, with the library inside
it: no environment variable, no checkout on the path."""

import os
from pathlib import Path

import hydra_core
from hydra_core import _native


def test_the_package_and_its_library_come_from_the_install_not_the_checkout():
    package = Path(hydra_core.__file__).resolve().parent
    assert "site-packages" in package.parts, package
    assert "HYDRA_CORE_LIB" not in os.environ
    assert Path(_native.library_path()).resolve().parent == package
    assert (package / "py.typed").exists()


def test_version_matches_meta_version(profile):
    v = profile.meta_version()
    assert v["version"] == hydra_core.version()
    assert v["abi_version"] >= 1
