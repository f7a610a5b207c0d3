"""What the API shows of a stored payload: credentials a user put in it, masked.

A payload is stored and sent as given; only its view changes. Headers and query parameters are
masked by a broad rule (any secret-looking word in the name: users name them freely, and a
masked header costs little). Keys inside a JSON request body or a routine's ``args`` are data
too (``keywords``, ``passengers``, ``design``), so there a key is masked only when it *names* a
credential (``password``, ``client_secret``, ``apiKey``, ``refresh_token``, ...), and a value there
that is an http(s) URL is masked as the request's URL is (``cronjob.daily_report``'s
``webhook_url``, a pre-signed link in a body); a form-encoded body is masked as a query is.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cronjob_adapters.tasks.ssrf import display_url
from cronjob_adapters.webhooks.delivery import TASK_TYPE as WEBHOOK_DELIVERY

MASK = "***"

_SECRET_NAMES = ("auth", "cookie", "token", "secret", "key", "pass", "sig", "cred", "jwt", "bearer",
                 "session", "private")
#: A JSON key names a credential when, lower-cased without ``_``, ``-``, ``.`` and spaces, it is
#: one of ``_CREDENTIAL_NAMES`` or ends with one of ``_CREDENTIAL_ENDINGS`` (``client_secret``,
#: ``apiKey``, ``x-api-key``, ``db.password``).
_CREDENTIAL_NAMES = ("auth", "key", "pass", "pin", "otp")
_CREDENTIAL_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey",
                       "privatekey", "secretkey", "signingkey", "authorization", "credential", "credentials",
                       "cookie", "jwt", "pwd")
_SEPARATORS = re.compile(r"[_\-. ]")
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)

#: Task types whose payload ``url`` comes from the service's configuration (its query may carry
#: an operator's token): shown without the query, as the event log shows it.
_CONFIGURED_URLS = (WEBHOOK_DELIVERY,)
_FORM = "application/x-www-form-urlencoded"


def secret_looking(name: str) -> bool:
    """Whether a header or query parameter's name suggests a credential (the broad rule)."""
    return any(s in name.lower() for s in _SECRET_NAMES)


def names_a_credential(key: str) -> bool:
    """Whether a JSON key names a credential (the narrow rule: see the module's docstring)."""
    flat = _SEPARATORS.sub("", key.lower())
    return flat in _CREDENTIAL_NAMES or flat.endswith(_CREDENTIAL_ENDINGS)


def masked_url(url: str) -> str:
    """``url`` with the values of secret-looking query parameters (``api_key``, ``token``, ...)
    and the password of its user info replaced: users put credentials there as often as in
    headers. A text ``urlsplit`` cannot read is returned as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    user_info, at, host = parts.netloc.rpartition("@")
    user, colon, _ = user_info.partition(":")
    netloc = f"{user}:{MASK}@{host}" if at and colon else parts.netloc
    query = masked_query(parts.query) if parts.query else parts.query
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def masked_query(query: str) -> str:
    """A query (or form-encoded body) with the values of secret-looking parameters replaced."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(secret_looking(name) for name, _ in pairs):
        return query
    return urlencode([(name, MASK if secret_looking(name) else value) for name, value in pairs], safe="*")


def masked_json(value: Any) -> Any:
    """``value`` (JSON) with the value under every key that names a credential replaced, and
    every text that is an http(s) URL as :func:`masked_url` shows it, at any depth. Walks
    without recursion into the (already size- and depth-bounded) value."""
    if isinstance(value, str):
        return _masked_text(value)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            copy: dict[str, Any] = {}
            for key, child in item.items():
                if isinstance(key, str) and names_a_credential(key) and child is not None:
                    copy[key] = MASK
                else:
                    copy[key] = child
                    stack.append((child, copy, key))
            parent[slot] = copy
        elif isinstance(item, list):
            listed = list(item)
            stack.extend((child, listed, index) for index, child in enumerate(item))
            parent[slot] = listed
        elif isinstance(item, str):
            parent[slot] = _masked_text(item)
    return root[0]


def _masked_text(text: str) -> str:
    """A JSON text as shown: an http(s) URL masked as :func:`masked_url` masks one."""
    return masked_url(text) if _HTTP_URL.match(text) else text


def masked_payload(payload: dict[str, Any], task_type: str) -> dict[str, Any]:
    """``payload`` as the API shows it: the values of secret-looking headers and query
    parameters, of credential keys in a JSON body or a routine's ``args`` and of secret-looking
    fields of a form-encoded body replaced, and the query of a configured webhook URL left out
    (all stay stored and sent as given)."""
    shown = dict(payload)
    headers = payload.get("headers")
    if isinstance(headers, dict):
        shown["headers"] = {k: MASK if secret_looking(k) else v for k, v in headers.items()}
    if isinstance(payload.get("url"), str):
        url = payload["url"]
        shown["url"] = display_url(url) if task_type in _CONFIGURED_URLS else masked_url(url)
    body = payload.get("body")
    if isinstance(body, dict | list):
        shown["body"] = masked_json(body)
    elif isinstance(body, str) and isinstance(headers, dict) and _is_form(headers):
        shown["body"] = masked_query(body)
    if isinstance(payload.get("args"), dict):
        shown["args"] = masked_json(payload["args"])
    return shown


def _is_form(headers: dict[str, Any]) -> bool:
    return any(isinstance(name, str) and name.lower() == "content-type" and isinstance(value, str)
               and value.split(";")[0].strip().lower() == _FORM for name, value in headers.items())
