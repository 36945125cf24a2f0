"""Datasets: MovieLens and the generated demo catalog, as plain Python records."""


class DatasetError(Exception):
    """Raised with a one-line, actionable message (what was wrong and what to do).

    The CLI prints the message instead of a traceback, so it must stand on its own: name the file
    or URL at fault and the step that fixes it.
    """
