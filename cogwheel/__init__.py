"""The ``cogwheel`` command line: run a whole installation locally and operate on it."""
