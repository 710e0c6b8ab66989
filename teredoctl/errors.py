"""The CLI's one error type (caught once, in teredoctl.cli.main)."""


class CliError(Exception):
    """An expected failure: its message says what went wrong and what to do."""
