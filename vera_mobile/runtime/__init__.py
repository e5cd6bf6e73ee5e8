"""The runtime: one generation loop and one tiled renderer over pluggable backends."""
