"""The one exception type for user mistakes.

A `BiolmError` carries a message meant for the user: it names the file, line or field
at fault and says what would be accepted. The CLI prints it as one line on stderr and
exits with code 2; the service answers 4xx with the same message. Any other exception
escaping is a bug and shows a traceback.
"""


class BiolmError(Exception):
    """A user-facing error (bad input, bad configuration, missing file)."""


class InvalidSequenceError(BiolmError):
    """A sequence holds a character outside the tokenizer's alphabet.

    Attributes:
        index: 0-based index of the sequence in the batch that was being read.
        position: 0-based position of the first offending character.
        char: the offending character.
        accepted: what the alphabet reads, for messages (e.g. ``A, C, G, T, N in any case``).
        unknown: the alphabet's unknown letter (``N`` for DNA, ``X`` for protein).
    """

    def __init__(
        self,
        index: int,
        position: int,
        char: str,
        message: str | None = None,
        accepted: str = "A, C, G, T, N in any case, U read as T",
        unknown: str = "N",
    ):
        self.index = index
        self.position = position
        self.char = char
        self.accepted = accepted
        self.unknown = unknown
        super().__init__(message or f"sequence {index}: {self.problem}")

    @property
    def invalid_character(self) -> str:
        """The character, where it is and what is accepted (no hint about settings)."""
        return f"invalid character {self.char!r} at position {self.position + 1} (accepted: {self.accepted})"

    @property
    def problem(self) -> str:
        """What is wrong and what is accepted, without saying where the sequence came from."""
        return f"{self.invalid_character[:-1]}; set tokenizer.invalid=n to read other letters as {self.unknown})"


def find_user_error(exc: BaseException | None) -> BiolmError | None:
    """The `BiolmError` in an exception's ``__cause__`` chain (Hydra wraps them), if any."""
    while exc is not None:
        if isinstance(exc, BiolmError):
            return exc
        exc = exc.__cause__
    return None


class RunInterrupted(BiolmError):
    """Training stopped by a signal (SIGINT, SIGTERM) before it finished.

    The message says how to resume; `exit_code` is the shell convention for the signal
    (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, message: str, exit_code: int):
        self.exit_code = exit_code
        super().__init__(message)


def require_extra(extra: str, *modules: str) -> None:
    """Check that the optional ``modules`` of the ``biolm[extra]`` install are importable.

    Raises:
        BiolmError: one is missing; the message says which extra installs it.
    """
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise BiolmError(f"this command needs {', '.join(missing)}, part of the '{extra}' extra: pip install 'biolm[{extra}]'")
