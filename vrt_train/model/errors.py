"""Exceptions raised by the VRT model package."""


class InputShapeError(ValueError):
    """The input tensor given to :class:`~vrt_train.model.VRT` has a shape it cannot process.

    Raised before any computation, with a message naming the shape found, the
    shape expected and how to fix the input.
    """


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into (beyond what can be adapted)."""
