"""Storage: every SQL statement of guard lives in this package.

:class:`Database` is the SQLite file (one connection per thread, numbered migrations on
open); each aggregate has a repository module over it — :mod:`guard.storage.references`
(references, their fingerprint tracks and keyframes), and the jobs, incidents, keys,
streams and webhooks repositories beside it. Nothing outside this package writes SQL.
"""

from guard.storage.database import Database, utc_now
from guard.storage.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, migrate, schema_version
from guard.storage.references import PipelineUse, ReferenceRepository

__all__ = [
    "Database", "utc_now", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "schema_version",
    "PipelineUse", "ReferenceRepository",
]
