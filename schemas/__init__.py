"""recstream: schemas."""
