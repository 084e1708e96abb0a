"""Errors that carry what went wrong and where."""


class NonFiniteError(FloatingPointError):
    """A NaN or Inf in the loss or a gradient.

    Attributes: ``what`` ("loss", "output" or "gradient"), ``param`` (the parameter name for a
    gradient, else None) and ``step`` (the time step, counted from the start of the stream, at
    which it first appeared; None if it could not be located).
    """

    def __init__(self, message, what=None, param=None, step=None):
        super().__init__(message)
        self.what, self.param, self.step = what, param, step


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, or does not fit what it is loaded into."""
