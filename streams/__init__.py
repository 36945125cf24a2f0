"""recstream: streams."""
