"""The exceptions that mean "the input cannot be used", as opposed to a bug in kpvp.

Library code raises them where it validates what a user gave it (flags, files, run
directories, media); the apps (`kpvp.cli.run`) report them in one line and exit with status 1,
while any other exception keeps its traceback. Each also derives from the built-in type that
callers caught before (`FileNotFoundError`, `ValueError`, `FileExistsError`).
"""


class UserError(Exception):
    """A mistake in the command line or its inputs; the message says what and how to fix it."""


class InputNotFound(UserError, FileNotFoundError):
    """A file, folder or trained run named on the command line does not exist."""


class InvalidInput(UserError, ValueError):
    """A flag value, config, file or medium that exists but cannot be used as asked."""


class OutputExists(UserError, FileExistsError):
    """Writing would replace a file or folder the user did not ask to replace."""
