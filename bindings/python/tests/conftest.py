import pytest

import hydra_core


@pytest.fixture
def profile(tmp_path):
    p = hydra_core.Profile.open(tmp_path / "profile")
    yield p
    p.close()
