"""What the API shows of a payload: credentials masked, everything else as stored."""

from __future__ import annotations

import pytest

from cronjob_adapters.web.masking import masked_json, masked_payload, names_a_credential


@pytest.mark.parametrize("key", ["password", "Password", "client_secret", "clientSecret", "apiKey", "x-api-key",
                                 "API_KEY", "db.password", "refresh_token", "access-token", "Authorization",
                                 "private_key", "credentials", "session_cookie", "key", "pass", "pin", "otp",
                                 "auth", "jwt", "user pwd"])
def test_keys_that_name_a_credential(key: str) -> None:
    assert names_a_credential(key)


@pytest.mark.parametrize("key", ["keywords", "passengers", "design", "token_count", "tokens", "monkey", "spin",
                                 "keyboard", "author", "username", "signature_required", "passport_country"])
def test_keys_that_merely_contain_such_a_word_are_data(key: str) -> None:
    assert not names_a_credential(key)


def test_a_routine_s_args_are_masked_and_the_stored_payload_is_not_changed() -> None:
    payload = {"routine": "crm.sync", "args": {"api_key": "S1", "since_days": 7, "accounts": [{"password": "S2"}]}}
    shown = masked_payload(payload, "python")
    assert shown == {"routine": "crm.sync", "args": {"api_key": "***", "since_days": 7,
                                                      "accounts": [{"password": "***"}]}}
    assert payload["args"]["api_key"] == "S1" and payload["args"]["accounts"][0]["password"] == "S2"


def test_a_deep_value_is_walked_without_recursion() -> None:
    deep: object = {"token": "S"}
    for _ in range(5000):
        deep = [deep]
    shown = masked_json(deep)
    for _ in range(5000):
        assert isinstance(shown, list)
        shown = shown[0]
    assert shown == {"token": "***"}


def test_a_null_credential_and_plain_values_are_shown_as_they_are() -> None:
    assert masked_json({"password": None, "n": 1}) == {"password": None, "n": 1}
    assert masked_json("token") == "token" and masked_json(3) == 3
