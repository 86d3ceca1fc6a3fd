"""The one exception type that means "the user gave bad input": the CLI prints its message
on one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input (missing data, corrupt file, unknown key, wrong shape); the message says what and where."""
