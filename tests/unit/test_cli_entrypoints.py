"""The packages import and carry a version."""

import brokkr


def test_packages_import_with_a_version():
    assert brokkr.__version__
