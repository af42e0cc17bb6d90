"""The prediction lifecycle, free of I/O."""
