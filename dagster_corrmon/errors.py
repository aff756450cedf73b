"""The one exception tree of dagster-corrmon.

Every error the library raises on bad input or bad configuration is a :class:`CorrmonError`, so a
caller can catch the whole family with one clause, and the CLI turns any of them into one line on
stderr with a non-zero exit code (never a traceback)::

    CorrmonError                 base; never raised itself
    ├── ConfigError              bad arguments to a factory / spec / CLI option (definition time)
    ├── InputDataError           bad data: unreadable file, unknown column, empty table, wrong dtype
    │   └── InsufficientDataError too little data for the statistic asked for
    └── StoreError               the signal store cannot do what was asked
        └── SchemaVersionError   the database was written by another schema version

A *failed check* is never an exception: it is data (``passed=False`` with a severity).
Messages always name *what* is wrong and *where* (file, column, key, line).
"""


class CorrmonError(Exception):
    """Base class of every error raised by dagster-corrmon."""


class ConfigError(CorrmonError, ValueError):
    """Invalid configuration: a factory argument, a spec key, a CLI option."""


class InputDataError(CorrmonError, ValueError):
    """Input data that cannot be used: unreadable, empty, unknown column, incompatible dtype."""


class InsufficientDataError(InputDataError):
    """Too few observations for the statistic that was asked for."""


class StoreError(CorrmonError):
    """The signal store could not read or write."""


class SchemaVersionError(StoreError):
    """The store's schema version differs from the one this code expects."""
