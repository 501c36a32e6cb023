import pytest

from tests.training.toy import write_streams


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    return write_streams(tmp_path_factory.mktemp("streams"))
