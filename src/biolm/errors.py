"""The one exception type for user mistakes.

A `BiolmError` carries a message meant for the user: it names the file, line or field
at fault and says what would be accepted. The CLI prints it as one line on stderr and
exits with code 2; the service answers 4xx with the same message. Any other exception
escaping is a bug and shows a traceback.
"""


class BiolmError(Exception):
    """A user-facing error (bad input, bad configuration, missing file)."""


class InvalidSequenceError(BiolmError):
    """A sequence holds a character outside the accepted nucleotide alphabet.

    Attributes:
        index: 0-based index of the sequence in the batch that was being read.
        position: 0-based position of the first offending character.
        char: the offending character.
    """

    def __init__(self, index: int, position: int, char: str, message: str | None = None):
        self.index = index
        self.position = position
        self.char = char
        super().__init__(
            message
            or (
                f"sequence {index}: invalid character {char!r} at position {position + 1} "
                "(accepted: A, C, G, T, N in any case; set tokenizer.invalid=n to read other "
                "letters as N)"
            )
        )
