"""recstream: models."""
