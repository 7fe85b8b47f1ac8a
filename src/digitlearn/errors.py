"""The one exception type for user mistakes and bad input.

The CLI prints these as a single line and exits non-zero; anything else that escapes
is a bug in digitlearn and keeps its traceback.
"""


class DigitlearnError(Exception):
    """Bad input or a failed step, described in one line that names the file or value."""


class DataError(DigitlearnError, ValueError):
    """A dataset file or folder that cannot be read as described."""


class DownloadError(DigitlearnError, OSError):
    """A dataset file that could not be fetched or failed its checksum."""
