"""Errors that mean "this input is bad", as opposed to a bug in the pipeline."""

from os import PathLike


class InputError(ValueError):
    """An input file is missing, corrupt or does not fit; the message names the file."""


def problem_with(error: InputError, path: str | PathLike[str]) -> str:
    """The error's message without the leading "<path>: ", for a manifest row that names the
    file already."""
    return str(error).removeprefix(f"{path}: ")


class DiskSpaceError(Exception):
    """A file system is too full for an output; the message names the output and the sizes."""
