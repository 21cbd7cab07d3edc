"""Errors of the analysis engine and of the Cortex connector::

    CeranaError (cerana.domain.errors)
    ├── NotFound
    │   └── AnalyzerNotFound       404 NotFoundError       (no such analyzer)
    ├── InvalidInput
    │   ├── PolicyRefused          400 PolicyRefused       (TLP/PAP above the maximum)
    │   └── ConfigurationRejected  400 AttributeCheckingError (configuration items)
    └── CortexUnavailable          503 CortexUnavailable   (instance unreachable)

A job that fails while running is not an exception for the caller: it ends
with status Failure and an error message on the job.
"""

from __future__ import annotations

from cerana.domain.errors import CeranaError, InvalidInput, NotFound


class AnalyzerNotFound(NotFound):
    """No analyzer has this id or name."""


class PolicyRefused(InvalidInput):
    """The observable's TLP or PAP is above what the analyzer may receive."""

    error_type = "PolicyRefused"


class ConfigurationRejected(InvalidInput):
    """An analyzer configuration breaks its definition's items."""

    error_type = "AttributeCheckingError"


class CortexUnavailable(CeranaError):
    """A Cortex instance did not answer, or answered with an error; the
    message names the instance."""

    status = 503
    error_type = "CortexUnavailable"
