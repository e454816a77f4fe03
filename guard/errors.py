"""One exception root for guard; the shells map these to exit codes and HTTP statuses."""

from __future__ import annotations


class GuardError(Exception):
    """Root of every error guard raises on purpose.

    ``exit_code`` is what the CLI exits with; ``http_status`` is what the API answers.
    """

    exit_code = 2
    http_status = 400


class InputError(GuardError):
    """A file or stream that cannot be read as video: corrupt, truncated, empty, audio-only."""

    http_status = 422


class NotFoundError(GuardError):
    """An unknown reference, incident or job id."""

    http_status = 404


class FormatError(GuardError):
    """A fingerprint export or on-disk store in a format this version cannot read."""

    http_status = 422


class StoreError(GuardError):
    """The catalog or index cannot be opened or written."""

    exit_code = 3
    http_status = 500


class URLPolicyError(GuardError):
    """A URL whose protocol or address guard refuses to open."""

    http_status = 400


class AuthError(GuardError):
    """A missing, unknown or revoked API key."""

    http_status = 401


class ForbiddenError(GuardError):
    """A valid key whose role may not use this operation."""

    http_status = 403


class ConflictError(GuardError):
    """A request that clashes with the current state (e.g. a duplicate stream id)."""

    http_status = 409


class TooLargeError(GuardError):
    """An upload or request body over the configured size limit."""

    http_status = 413


class DiskFullError(GuardError):
    """Not enough free disk space to accept an upload."""

    exit_code = 3
    http_status = 507


class StreamError(GuardError):
    """A live stream that cannot be opened, read or kept monitoring (unreachable, stalled, gone)."""

    http_status = 422


class WebhookError(GuardError):
    """A webhook endpoint that is invalid (bad URL, missing secret) or a signature that does not verify."""

    http_status = 400


class ConfigError(GuardError):
    """Settings that do not validate (e.g. a ``GUARD_*`` variable with a bad value)."""

    http_status = 500
