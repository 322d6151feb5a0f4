"""Training methods, each a small :class:`Method` whose ``step`` computes the loss of one iteration.

``METHODS.names()`` lists them; ``METHODS.get(name)`` returns the class.
"""

from semiseg.methods.base import METHODS, Method, StepOutput
from semiseg.methods import supervised, fixmatch, unimatch, v2  # noqa: F401  (register methods)
from semiseg.methods import prevmatch, corrmatch, semiovs  # noqa: F401  (register methods)

__all__ = ["METHODS", "Method", "StepOutput"]
