"""Offline, in-process evaluation of recstream and of the baselines it must beat."""
