"""Why a training cannot start, in words a person can act on."""


class TrainingRefused(Exception):
    """The request cannot start a training; the message tells the person what is missing."""
