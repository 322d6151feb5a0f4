"""User-facing error types: raised for bad input, printed without a traceback by the CLIs."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input (config, data, command line), not by a bug."""


class ConfigError(UserError):
    """A configuration file or value is invalid."""


class DataError(UserError):
    """A dataset file or folder is missing or malformed."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class StopRequested(KeyboardInterrupt):
    """A graceful stop (SLURM preemption or time limit, SIGTERM): training halted at a step boundary."""


class StorageError(OSError):
    """Run files cannot be written (disk full, read-only or forbidden folder): transient, the run stays resumable."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()
