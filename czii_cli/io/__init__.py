"""File handling: volumes, artifacts, picks, catalogs, atomic writes.

Nothing outside this package opens files; library modules take and return arrays.
"""
