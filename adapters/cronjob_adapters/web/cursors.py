"""The opaque text of a list cursor (``GET /v1/schedules?cursor=...``, ``next_cursor``).

A :class:`~cronjob.ports.repository.ListCursor` travels as URL-safe base64, without padding, of a
small JSON object: ``{"o": "created" | "due", "t": "<instant>", "id": "<schedule id>"}``. Clients
are told to treat it as opaque; it is not signed (a position made up by hand lists what follows
that position, nothing more), but only text this module could have written is read back: any
other is a :class:`ValidationError` naming ``cursor``, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from cronjob.domain.errors import ValidationError
from cronjob.domain.instants import instant_text
from cronjob.ports.repository import ListCursor, ListOrder

#: The longest cursor text taken (one this API writes is about a tenth of it).
MAX_LENGTH = 1024
#: The alphabet of the text: URL-safe base64 without padding.
PATTERN = r"^[A-Za-z0-9_-]+$"

_KEYS = {"o", "t", "id"}


def encode_cursor(cursor: ListCursor) -> str:
    """The opaque text of ``cursor`` (its instant as :func:`instant_text` writes it)."""
    body = json.dumps({"o": cursor.order.value, "t": instant_text(cursor.at), "id": cursor.id},
                      ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> ListCursor:
    """The cursor whose text :func:`encode_cursor` wrote; :class:`ValidationError` naming
    ``cursor`` for any other text (cut short, altered, or never a cursor)."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        fields = json.loads(raw.decode())
        if not isinstance(fields, dict) or fields.keys() != _KEYS:
            raise ValueError("not a cursor's fields")
        order, at, schedule_id = ListOrder(fields["o"]), fields["t"], fields["id"]
        if not isinstance(at, str) or not isinstance(schedule_id, str) or not schedule_id:
            raise ValueError("not a cursor's values")
        schedule_id.encode()  # JSON's "\ud800" is no text: a store could not look it up (UnicodeEncodeError)
        instant = datetime.fromisoformat(at)
        if instant.tzinfo is None or instant_text(instant) != at:
            raise ValueError("not an instant as a cursor holds it")
    except (ValueError, binascii.Error, OverflowError, RecursionError):
        raise ValidationError("cursor is not one this API gave: pass next_cursor from a previous page as it came, "
                              "or leave cursor out to start from the first page", field="cursor") from None
    return ListCursor(order, instant, schedule_id)
