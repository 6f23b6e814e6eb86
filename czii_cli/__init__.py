"""czii: find macromolecules in cryo-electron tomograms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("czii")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
