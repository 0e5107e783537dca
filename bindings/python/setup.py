"""Build hook: copies the native library into the package so the wheel
carries it (no environment variable needed at run time).

Where the library comes from, first match wins:
1. ``HYDRA_CORE_LIB``: the path of an already built ``libhydra_core``;
2. in a checkout, the newest of ``target/release`` and ``target/debug``;
3. in a checkout with neither, ``cargo build --release --lib``.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
LIB_NAME = "libhydra_core.dylib" if sys.platform == "darwin" else "libhydra_core.so"


def crate_version() -> str:
    cargo = CHECKOUT / "Cargo.toml"
    if cargo.exists():
        match = re.search(r'^version\s*=\s*"([^"]+)"', cargo.read_text(), re.M)
        if match:
            return match.group(1)
    return "0.0.0"


def native_library() -> Path:
    explicit = os.environ.get("HYDRA_CORE_LIB")
    if explicit:
        return Path(explicit)
    if not (CHECKOUT / "Cargo.toml").exists():
        raise SystemExit("hydra-core: set HYDRA_CORE_LIB to a built libhydra_core, or build from a checkout")
    built = [CHECKOUT / "target" / p / LIB_NAME for p in ("release", "debug")]
    built = [b for b in built if b.exists()]
    if built:
        return max(built, key=lambda b: b.stat().st_mtime)
    subprocess.run(["cargo", "build", "--release", "--lib"], cwd=CHECKOUT, check=True)
    return CHECKOUT / "target" / "release" / LIB_NAME


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "hydra_core" / LIB_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(native_library(), target)


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


try:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """Any Python 3, this platform: the library is called through ctypes."""

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    wheel_cmd = {"bdist_wheel": PlatformWheel}
except ImportError:  # building without wheel: no wheel to tag
    wheel_cmd = {}

setup(
    version=crate_version(),
    cmdclass={"build_py": BuildWithLibrary, **wheel_cmd},
    distclass=BinaryDistribution,
)
