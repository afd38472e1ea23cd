"""Errors that mean "this input is bad", as opposed to a bug in the pipeline."""


class InputError(ValueError):
    """An input file is missing, corrupt or does not fit; the message names the file."""


class DiskSpaceError(Exception):
    """A file system is too full for an output; the message names the output and the sizes."""
