"""The one error a user's data or configuration raises: every package reports it as one line, exit 2."""


class BadInputError(ValueError):
    """The user's data or configuration cannot be used; the message is shown to them as one line."""
