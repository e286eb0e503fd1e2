"""Brokkr: a broker that stores desired Kubernetes state and agents that apply it."""

from importlib import metadata

try:
    __version__ = metadata.version("brokkr")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
