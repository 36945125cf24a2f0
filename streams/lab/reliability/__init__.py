"""Reliability scenarios run against real brokers and worker processes.

The integration tests assert on what these return, and `recstream reliability` runs the same
scenarios (longer) and writes RELIABILITY.md, so the report and the tests cannot disagree.
"""
