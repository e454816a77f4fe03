"""Multipart uploads streamed straight to the upload folder, with a hard size limit.

Starlette's form parser spools files to the system temp folder before a route sees them, so
a huge body would fill that disk before any check ran. This parser reads the request body
chunk by chunk, writes the one file part into ``settings.uploads`` and stops at the first
byte past the limit; a ``Content-Length`` already over the limit is refused before reading.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from guard.errors import DiskFullError, InputError, TooLargeError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

log = logging.getLogger(__name__)

#: Bytes of multipart overhead (boundaries, part headers, small fields) allowed on top of the file.
FORM_OVERHEAD = 64 * 1024
MAX_FIELDS = 64
MAX_FIELD_BYTES = 16 * 1024
#: Free disk space an upload may never eat into (the catalog and index need room too).
FREE_SPACE_RESERVE = 512 * 1024 * 1024

M = TypeVar("M", bound=BaseModel)


@dataclass
class UploadForm:
    """The non-file fields of a form (name → values) and the file written to disk, if any."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    file_path: Path | None = None
    filename: str | None = None
    file_field: str | None = None
    size: int = 0

    def value(self, name: str) -> str | None:
        """The last value of a field, or None."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def validate(self, model: type[M], list_fields: tuple[str, ...] = ()) -> M:
        """The fields as ``model`` (422 :class:`InputError` naming the first bad field).

        ``list_fields`` may repeat or hold comma-separated values.
        """
        repeated = sorted(n for n, values in self.fields.items() if len(values) > 1 and n not in list_fields)
        if repeated:
            raise InputError(f"form field {repeated[0]!r} given more than once")
        raw: dict = {name: values[0] for name, values in self.fields.items() if name not in list_fields}
        for name in list_fields:
            if name in self.fields:
                raw[name] = [item.strip() for value in self.fields[name] for item in value.split(",")]
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InputError(f"invalid form field {where}: {first['msg']}") from exc

    def discard(self) -> None:
        """Delete the uploaded file (after a validation error, for instance)."""
        if self.file_path is not None:
            self.file_path.unlink(missing_ok=True)
            self.file_path = None


class _Receiver:
    """python-multipart callbacks that write file parts to disk and keep fields in memory."""

    def __init__(self, folder: Path, max_bytes: int, file_field: str):
        self.folder = folder
        self.max_bytes = max_bytes
        self.file_field = file_field
        self.form = UploadForm()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._data = bytearray()
        self._file: IO[bytes] | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._data = b"", None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InputError("multipart part without a name")
        self._name = _decode(options[b"name"])
        if b"filename" in options and self._name == self.file_field:
            if self.form.file_path is not None:
                raise InputError(f"only one {self.file_field!r} part is accepted")
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix="upload-", suffix=".part", delete=False)
            self._file = handle
            self.form.file_path = Path(handle.name)
            self.form.filename = _safe_filename(_decode(options[b"filename"]))
            self.form.file_field = self._name
        elif len(self.form.fields) >= MAX_FIELDS:
            raise InputError(f"too many form fields (at most {MAX_FIELDS})")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.form.size += end - start
            if self.form.size > self.max_bytes:
                raise TooLargeError(f"upload larger than the limit of {self.max_bytes} bytes")
            self._file.write(data[start:end])
        else:
            self._data += data[start:end]
            if len(self._data) > MAX_FIELD_BYTES:
                raise InputError(f"form field {self._name!r} longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._name is not None:
            self.form.fields.setdefault(self._name, []).append(_decode(bytes(self._data)))

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.form.discard()


async def receive_upload(request: Request, folder: Path, max_bytes: int, file_field: str = "file") -> UploadForm:
    """Parse a ``multipart/form-data`` request, writing its ``file_field`` part into ``folder``.

    Raises :class:`TooLargeError` (413) when the body is over ``max_bytes`` (plus form
    overhead) by its ``Content-Length`` or as it streams in, and :class:`InputError` for
    anything that is not a well-formed form; no partial file is left behind either way.
    """
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InputError("expected a multipart/form-data body with a boundary")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InputError("invalid Content-Length")
        if int(length) > max_bytes + FORM_OVERHEAD:
            raise TooLargeError(f"upload of {int(length)} bytes is over the limit of {max_bytes} bytes")
    _check_free_space(folder, int(length) if length is not None else 0)
    receiver = _Receiver(folder, max_bytes, file_field)
    try:
        parser = MultipartParser(params[b"boundary"], receiver.callbacks(), max_size=max_bytes + FORM_OVERHEAD)
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD:
                raise TooLargeError(f"upload larger than the limit of {max_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        receiver.abort()
        raise InputError(f"malformed multipart body ({exc})") from exc
    except ClientDisconnect as exc:
        receiver.abort()
        raise InputError("client disconnected during the upload") from exc
    except BaseException:
        receiver.abort()
        raise
    if receiver._file is not None:  # body ended inside the file part
        receiver.abort()
        raise InputError("malformed multipart body (truncated)")
    return receiver.form


def _check_free_space(folder: Path, incoming: int) -> None:
    """507 when the upload would leave less than :data:`FREE_SPACE_RESERVE` bytes on the disk."""
    probe = folder if folder.exists() else folder.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free - incoming < FREE_SPACE_RESERVE:
        raise DiskFullError(f"not enough disk space for this upload ({free} bytes free)")


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return "".join(ch for ch in text if ch >= " " or ch == "\t")


def _safe_filename(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip() or "upload"
    return base[:200]
