"""Settings: built once (from the environment or by the caller) and passed to the service.

Every setting is a typed, validated, immutable field. :meth:`Settings.from_env` reads
``GUARD_*`` environment variables: ``GUARD_<FIELD>`` for a top-level field
(``GUARD_SAMPLE_FPS``, ``GUARD_HOME``), ``GUARD_<SECTION>__<FIELD>`` for a field of a section
(``GUARD_MATCH__SEED_RADIUS``, ``GUARD_LIVE__WINDOW_SECONDS``, ``GUARD_WEBHOOK__URL``), or a
whole section as JSON (``GUARD_MATCH='{"seed_radius": 30}'``); tuples are JSON lists
(``GUARD_MATCH__RATES='[1.0, 0.95]'``). The first release's names ``GUARD_LIVE_START_TIMEOUT``,
``GUARD_WEBHOOK_URL`` and ``GUARD_WEBHOOK_SECRET`` still work (the ``__`` names win when both
are set). Empty variables are ignored. A bad value raises :class:`~guard.errors.ConfigError`
naming the variable and what is wrong with it.

``Settings(...)`` never reads the environment: tests and scripts that build settings get
exactly what they wrote, whatever ``GUARD_*`` variables the developer has set. Changed copies
come from :meth:`Settings.replace` (validated like a new object; sections have it too).
"""

from __future__ import annotations

import json
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from guard.errors import ConfigError
from guard.signals import DEFAULT_SIGNAL

#: Prefix of every environment variable guard reads.
ENV_PREFIX = "GUARD_"
#: Separator between a section and its field in a variable's name.
NESTED_DELIMITER = "__"
#: Variable names of the first release that still set a field of a section.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "GUARD_LIVE_START_TIMEOUT": ("live", "start_timeout"),
    "GUARD_WEBHOOK_URL": ("webhook", "url"),
    "GUARD_WEBHOOK_SECRET": ("webhook", "secret"),
}

#: What one ``guard serve`` process does (``--roles``, ``GUARD_ROLES``; all by default): ``api``
#: answers HTTP, ``jobs`` runs queued ingests and scans, ``monitor`` runs live streams, ``dispatch``
#: sends webhooks from the outbox. Processes with different roles can share one store.
PROCESS_ROLES = ("api", "jobs", "monitor", "dispatch")

#: True only while :meth:`Settings.from_env` builds settings: then the environment is read.
_reading_env: ContextVar[bool] = ContextVar("guard_reading_env", default=False)


class _Model(Protocol):
    """What :class:`_Replaceable` needs of the pydantic model it is mixed into."""

    def __init__(self, **data: Any) -> None: ...

    def __iter__(self) -> Iterator[tuple[str, Any]]: ...


_ModelT = TypeVar("_ModelT", bound=_Model)


class _Replaceable:
    """``replace(**changes)``: the frozen stand-in for ``dataclasses.replace``."""

    def replace(self: _ModelT, **changes: Any) -> _ModelT:
        """A copy with ``changes`` applied, validated like a newly built object."""
        return type(self)(**{**dict(self), **changes})


class _Section(_Replaceable, BaseModel):
    """A group of settings: frozen, validated, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class MatchSettings(_Section):
    """Thresholds of the temporal matcher, in bits of the default 256-bit signal (mhash16).

    Chosen from the distance distributions in docs/descriptors.md (scripts/measure_descriptors.py):
    ``seed_radius`` (12.5 %) is below every distance seen between unrelated frames, so index
    hits are almost never chance; ``match_radius`` (19.5 %) is the relaxed per-frame distance
    accepted once the offset agrees with a seeded alignment — it admits 90 % of frames cropped
    by 10 % under a logo while about 1 % of unrelated frame pairs come that close.

    A copy found at these radii has its edges re-drawn (see :func:`guard.match.refine`): frames
    around it score ``extend_radius`` (25 %) minus their distance, and the copy is the span of
    maximal summed score. A 20 % crop or a 25 % overlay keeps whole scenes at 50–75 bits — they
    stay in the copy when clean stretches flank them — while unrelated programme sits at 95+
    bits at the copy's alignment. Where two segments restate one stretch of query, the weaker
    wins only when its mean distance over the shared span is ``rival_margin`` bits lower: a
    better alignment is better by several bits, neighbouring rates over a short copy differ by
    a fraction of one — except a segment of another owner lasting ``conflict_cover`` of the
    closer one or more: two owners' versions of one footage (a league's feed and a
    broadcaster's with its own graphics) differ by 15–45 bits over a copy and the weaker lasts
    0.38–1.0 of the closer, while the one look-alike of another reference on the accuracy corpus
    lasted 0.16 of it (scripts/measure_conflicts.py): both are kept, an ownership conflict
    (see :mod:`guard.act`). With ``mirror``, the horizontally flipped query is searched as well
    (for signals that can flip codes; twice the index work); a mirrored copy must last
    ``mirror_min_factor`` times the reference's ``min_seconds``. With ``regions``, windows found
    inside scanned frames (a streamer's layout, a picture-in-picture; :mod:`guard.regions`) are
    searched too, each as a query of its own; such a copy must last ``region_min_factor`` times
    the reference's ``min_seconds``.
    """

    seed_radius: int = Field(32, ge=0)
    match_radius: int = Field(50, ge=0)
    max_hits_per_frame: int = Field(48, ge=1)
    offset_bin: float = Field(0.5, gt=0)
    min_seed_frames: int = Field(3, ge=1)
    max_hypotheses: int = Field(12, ge=1)
    align_tolerance: float = Field(0.3, ge=0)
    max_gap: float = Field(2.5, ge=0)
    edge_window: float = Field(1.0, ge=0)
    edge_support: int = Field(3, ge=0)
    merge_gap: float = Field(10.0, ge=0)
    uniqueness_shifts: tuple[float, ...] = (-12.0, -6.0, -3.0, -1.5, 1.5, 3.0, 6.0, 12.0)
    uniqueness_margin: int = Field(4, ge=0)
    min_uniqueness: float = Field(0.55, ge=0, le=1)
    min_matched_fraction: float = Field(0.5, ge=0, le=1)
    extend_radius: int = Field(64, ge=0)
    rival_margin: float = Field(2.0, ge=0)
    conflict_cover: float = Field(0.3, ge=0)
    mirror: bool = True
    mirror_min_factor: float = Field(2.0, ge=0)
    regions: bool = True
    region_min_factor: float = Field(1.5, ge=0)
    rates: tuple[float, ...] = Field((1.0, 0.95, 1.05, 0.9, 1.1), min_length=1)
    #: Scores become the calibrated probability of a copy and segments under ``min_probability``
    #: (None: the model's decision threshold) are dropped (:mod:`guard.calibration`); off: raw
    #: placeholder scores and every segment (what scripts/train_calibration.py looks at).
    calibrated: bool = True
    min_probability: float | None = Field(None, ge=0, le=1)

    @field_validator("rates")
    @classmethod
    def _positive_rates(cls, rates: tuple[float, ...]) -> tuple[float, ...]:
        if any(rate <= 0 for rate in rates):
            raise ValueError("every rate must be greater than 0")
        return rates


class LiveSettings(_Section):
    """Live stream monitoring (see :mod:`guard.monitor`).

    ``window_seconds``: stream history the sliding-window matcher looks at (raised to fit the
    longest reference ``min_seconds``). ``decision_interval``: how often a stream's window is
    matched (adds at most this much latency). ``stall_timeout``: a source silent this long is
    reconnected. ``reconnect_*``: exponential backoff between attempts; a stream that stays
    unreachable for ``give_up_after`` seconds ends with an error. ``start_timeout``: how long an
    HLS playlist may be missing when monitoring starts (a packager writes it only after its
    first segment; retried with the reconnect backoff, then the stream fails;
    ``GUARD_LIVE__START_TIMEOUT``, formerly ``GUARD_LIVE_START_TIMEOUT``). ``incident_idle_seconds``:
    an incident whose copy has not been seen this long is closed. ``update_interval``:
    least time between two ``incident.updated`` events of one incident.
    """

    window_seconds: float = Field(24.0, gt=0)
    decision_interval: float = Field(0.5, gt=0)
    open_timeout: float = Field(10.0, gt=0)
    stall_timeout: float = Field(8.0, gt=0)
    reconnect_initial: float = Field(0.5, gt=0)
    reconnect_max: float = Field(10.0, gt=0)
    give_up_after: float = Field(300.0, ge=0)
    start_timeout: float = Field(60.0, ge=0)
    incident_idle_seconds: float = Field(20.0, gt=0)
    update_interval: float = Field(10.0, ge=0)
    decoder_threads: int = Field(1, ge=0)
    thumbnail_width: int = Field(160, ge=8)
    #: Match the sound of monitored streams too (their first audio stream), beside the picture.
    audio: bool = True
    #: How far (s) a restream may run ahead of a live reference's feed and still be caught when
    #: the feed catches up: monitors started while a live reference airs keep this much more window.
    reference_lead: float = Field(30.0, ge=0)
    #: How often (s) a live reference's ingest commits what aired (what monitors can match).
    reference_append_interval: float = Field(0.5, gt=0)


class WebhookSettings(_Section):
    """Delivery of webhook events from the outbox (see :mod:`guard.actions`).

    ``url``/``secret``: a default endpoint that receives every event (registered in the
    catalog under owner ``"*"`` when the service starts). Retries back off exponentially from
    ``backoff_initial`` to ``backoff_max`` seconds; after ``max_attempts`` failed attempts an
    event is marked ``failed`` (kept in the delivery log). ``timeout`` bounds each read and
    write of an attempt; ``connect_timeout`` (default: ``timeout``) the connection and TLS
    handshake; ``pool_timeout`` (default: ``timeout``) the wait for a free connection.
    """

    url: str | None = None
    secret: str | None = None
    timeout: float = Field(5.0, gt=0)
    backoff_initial: float = Field(1.0, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    max_attempts: int = Field(20, ge=1)
    workers: int = Field(4, ge=1)
    connect_timeout: float | None = Field(None, gt=0)
    pool_timeout: float | None = Field(None, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url


class Settings(_Replaceable, BaseSettings):
    """Everything configurable about one guard installation."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED_DELIMITER,
        env_ignore_empty=True, case_sensitive=False,
    )

    #: Store folder (catalog + index); ``GUARD_HOME``.
    home: Path = Field(default_factory=lambda: Path.cwd() / "fingerprints")
    signal: str = Field(DEFAULT_SIGNAL, min_length=1)
    sample_fps: float = Field(4.0, gt=0, le=120)
    fast_decode: bool = True
    default_min_seconds: float = Field(5.0, gt=0)
    match: MatchSettings = Field(default_factory=MatchSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    #: Let monitored URLs reach loopback, private, link-local and reserved addresses (tests, labs).
    allow_private_addresses: bool = False
    #: Largest upload (reference or scan) the API accepts, in bytes; refused with 413 beyond.
    upload_max_bytes: int = Field(2 * 1024**3, ge=1)
    #: Where the API streams uploads before a job fingerprints them (default: <home>/uploads).
    upload_dir: Path | None = None
    #: Worker threads running background ingest and scan jobs.
    job_workers: int = Field(2, ge=1)
    #: Niceness of the job threads (Linux): fingerprinting yields the CPU to API requests.
    job_nice: int = Field(10, ge=0, le=19)
    #: Media seconds a URL scan reads at most (a live URL would never end).
    scan_url_max_seconds: float = Field(3600.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only, unless :meth:`from_env` is building: then also ``GUARD_*``
        variables (the ``__`` names before the first release's names). No ``.env`` file."""
        if not _reading_env.get():
            return (init_settings,)
        return init_settings, env_settings, _LegacyNames(settings_cls)

    @classmethod
    def from_env(cls, **overrides: Any) -> "Settings":
        """Settings from ``GUARD_*`` environment variables, then ``overrides`` (None ones skipped).

        :class:`~guard.errors.ConfigError` names each bad variable and what is wrong with it.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        token = _reading_env.set(True)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, given)) from None
        except SettingsError as exc:  # a list or section whose JSON does not parse
            raise ConfigError(_explain_json(exc)) from None
        finally:
            _reading_env.reset(token)

    @property
    def uploads(self) -> Path:
        """The folder uploads are streamed into."""
        return Path(self.upload_dir) if self.upload_dir else Path(self.home) / "uploads"

    def with_home(self, home: Path) -> "Settings":
        """The same settings over another store folder."""
        return self.replace(home=Path(home))


class _LegacyNames(PydanticBaseSettingsSource):
    """The first release's ``GUARD_LIVE_START_TIMEOUT``, ``GUARD_WEBHOOK_URL``, ``GUARD_WEBHOOK_SECRET``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the variables itself

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, str]] = {}
        for name, (section, key) in LEGACY_NAMES.items():
            value = os.environ.get(name)
            if value:
                values.setdefault(section, {})[key] = value
        return values


def env_names(loc: tuple[int | str, ...]) -> list[str]:
    """The variables that can set the field at ``loc``, e.g. ``("match", "seed_radius")`` →
    ``GUARD_MATCH__SEED_RADIUS``, ``GUARD_MATCH`` (the whole section as JSON)."""
    path = [str(part) for part in loc if isinstance(part, str)]
    names = [ENV_PREFIX + NESTED_DELIMITER.join(path[:n]).upper() for n in range(len(path), 0, -1)]
    names += [name for name, target in LEGACY_NAMES.items() if tuple(path[:2]) == target]
    return names


def _explain(exc: ValidationError, overrides: dict[str, Any]) -> str:
    """One line per validation error: the variable (or setting) that holds the bad value, what
    it holds, and the problem, joined into one line."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc) or "settings"
        if loc and loc[0] in overrides:
            source = f"setting {field}"
        else:
            found = [name for name in env_names(loc) if os.environ.get(name)]
            source = found[0] if found else f"setting {field}"
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
        if isinstance(value, str) and ("secret" in field or "url" in field):
            shown = ""  # never echo a secret or credentials into a log
        problems.append(f"{source}{shown}: {error['msg']}")
    return "invalid settings: " + "; ".join(problems)


def _holds_json(name: str, section: str, field: str) -> bool:
    """Whether variable ``name`` (upper case) sets section ``field`` as JSON or a list field in it."""
    if name == section:
        return True
    if not name.startswith(section + NESTED_DELIMITER):
        return False
    model = Settings.model_fields[field].annotation if field in Settings.model_fields else None
    key = name[len(section + NESTED_DELIMITER):].lower()
    inner = getattr(model, "model_fields", {}).get(key)
    return inner is not None and getattr(inner.annotation, "__origin__", None) is tuple


def _explain_json(exc: SettingsError) -> str:
    """The variables under the field pydantic-settings names whose value must be JSON (a whole
    section, or a list) and is not."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found[1] if found else ""
    section = ENV_PREFIX + field.upper()
    problems = []
    for name, value in sorted(os.environ.items()):
        if not _holds_json(name.upper(), section, field):
            continue
        try:
            json.loads(value)
        except ValueError as error:
            problems.append(f"{name}={value!r}: not valid JSON (a list is written [1.0, 0.95], a section "
                            f'{{"name": value}}): {error}')
    return "invalid settings: " + ("; ".join(problems) or " ".join(str(exc).split()))


def parse_roles(text: str | Iterable[str]) -> tuple[str, ...]:
    """Roles from ``"api,jobs"`` (or a list), in :data:`PROCESS_ROLES` order; :class:`ConfigError`
    for an unknown or missing role."""
    names = [part.strip().lower() for part in (text.split(",") if isinstance(text, str) else text)]
    names = [name for name in names if name]
    unknown = sorted(set(names) - set(PROCESS_ROLES))
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(PROCESS_ROLES)}")
    if not names:
        raise ConfigError(f"no role given: choose from {', '.join(PROCESS_ROLES)}")
    return tuple(role for role in PROCESS_ROLES if role in names)
