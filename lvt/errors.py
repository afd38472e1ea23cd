"""Errors that mean "this input is bad", as opposed to a bug in the pipeline."""


class InputError(ValueError):
    """An input file is missing, corrupt or does not fit; the message names the file."""
