"""Which of the driver's errors the MongoDB adapter takes for an outage (waited for, a 503)
rather than for a mistake: errors built as the driver raises them, no server needed."""

from __future__ import annotations

import pytest
from dns.resolver import NXDOMAIN, NoNameservers
from pymongo.errors import ConfigurationError

from cronjob.ports.repository import StoreUnavailable
from cronjob_adapters.mongodb.repository import _reachable, unavailable


def _srv_lookup_failed(cause: Exception) -> ConfigurationError:
    """What PyMongo raises when a ``mongodb+srv://`` name's SRV lookup fails (its ``_resolve_uri``)."""
    try:
        raise ConfigurationError(str(cause)) from cause
    except ConfigurationError as exc:
        return exc


@pytest.mark.parametrize("cause", [NXDOMAIN(), NoNameservers()])
async def test_a_srv_name_dns_does_not_resolve_is_an_outage_waited_for(cause: Exception) -> None:
    error = _srv_lookup_failed(cause)
    assert unavailable(error)
    with pytest.raises(StoreUnavailable):
        async with _reachable():
            raise error


async def test_another_configuration_error_is_left_as_it_is() -> None:
    error = ConfigurationError("Only one TXT record is supported")  # a mistake: waiting would not cure it
    assert not unavailable(error)
    with pytest.raises(ConfigurationError):
        async with _reachable():
            raise error
