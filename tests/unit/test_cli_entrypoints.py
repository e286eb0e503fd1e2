"""The console scripts exist and answer."""

import subprocess
import sys


def test_packages_import_with_a_version():
    import brokkr

    assert brokkr.__version__
