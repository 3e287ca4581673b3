"""The error the TumorSeg module shows to the user."""


class TumorSegError(RuntimeError):
    """A failure to show the user: the message is one line; ``details`` keeps the engine's output."""

    def __init__(self, message, details=""):
        super().__init__(message)
        self.details = details
