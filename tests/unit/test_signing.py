"""Standard Webhooks signing and verification: pure, no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions.signing import (
    SECRET_PREFIX,
    SignatureError,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The official vector: standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function); the same key, id, time and payload appear in the other language libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_700_000_000
BODY = b'{"type":"journey.action.fired","data":{"count":2}}'


def signed_headers(
    *secrets: str, msg_id: str = "msg_1", timestamp: int = NOW, body: bytes = BODY
) -> dict[str, str]:
    return webhook_headers(list(secrets), msg_id, timestamp, body)


# --- signing -------------------------------------------------------------------------------------------


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_sign_accepts_the_secret_without_its_prefix() -> None:
    assert sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


@given(
    st.binary(min_size=24, max_size=64),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="."), min_size=1),
    st.integers(min_value=0, max_value=2**40),
    st.binary(),
)
def test_sign_is_hmac_sha256_of_id_timestamp_and_body(
    key: bytes, msg_id: str, timestamp: int, body: bytes
) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    assert sign(secret, msg_id, timestamp, body) == "v1," + base64.b64encode(mac).decode()


@pytest.mark.parametrize("msg_id", ["msg_\u00e9", "msg_\ud800", "msg\n1"])
def test_sign_refuses_an_id_that_cannot_travel_in_a_header(msg_id: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        sign(SPEC_SECRET, msg_id, NOW, BODY)


@pytest.mark.parametrize("msg_id", ["", "msg.1"])
def test_sign_refuses_an_id_that_is_empty_or_contains_a_dot(msg_id: str) -> None:
    with pytest.raises(ValueError, match="contain no '\\.'"):
        sign(SPEC_SECRET, msg_id, NOW, BODY)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", "", "whsec_é"])
def test_secret_that_is_not_base64_is_a_value_error(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key(secret)


def test_generate_secret_is_prefixed_base64_of_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(secret_key(secret)) == 32
    assert generate_secret() != secret


@pytest.mark.parametrize("nbytes", [24, 64])
def test_generate_secret_size_can_be_chosen_within_the_spec(nbytes: int) -> None:
    assert len(secret_key(generate_secret(nbytes))) == nbytes


@pytest.mark.parametrize("nbytes", [16, 23, 65])
def test_generate_secret_refuses_sizes_outside_24_to_64_bytes(nbytes: int) -> None:
    with pytest.raises(ValueError):
        generate_secret(nbytes)


def test_signature_header_has_one_signature_per_secret_in_order() -> None:
    new, old = generate_secret(), generate_secret()
    header = signature_header([new, old], "msg_1", NOW, BODY)
    assert header.split(" ") == [sign(new, "msg_1", NOW, BODY), sign(old, "msg_1", NOW, BODY)]


@pytest.mark.parametrize("secrets", [[], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
def test_signature_header_needs_a_list_of_secrets(secrets: list[str] | str) -> None:
    with pytest.raises(ValueError, match="list of one or more"):
        signature_header(secrets, "msg_1", NOW, BODY)


def test_webhook_headers_are_the_three_standard_headers() -> None:
    headers = webhook_headers([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


# --- verification --------------------------------------------------------------------------------------


def test_verify_accepts_the_standard_webhooks_test_vector() -> None:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_accepts_a_correctly_signed_request() -> None:
    secret = generate_secret()
    verify(secret, signed_headers(secret), BODY, now=NOW)
    verify([secret], signed_headers(secret), BODY, now=NOW)


def test_verify_accepts_headers_in_any_capitalisation() -> None:
    secret = generate_secret()
    headers = {k.title(): v for k, v in signed_headers(secret).items()}
    verify(secret, headers, BODY, now=NOW)


def test_verify_rejects_a_changed_body() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match=r"^no matching signature$"):
        verify(secret, signed_headers(secret), BODY + b" ", now=NOW)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_verify_rejects_changed_metadata(header: str) -> None:
    secret = generate_secret()
    headers = signed_headers(secret)
    headers[header] = "msg_2" if header == "webhook-id" else str(NOW + 1)
    with pytest.raises(SignatureError, match=r"^no matching signature$"):
        verify(secret, headers, BODY, now=NOW)


def test_verify_rejects_another_secret() -> None:
    with pytest.raises(SignatureError, match=r"^no matching signature$"):
        verify(generate_secret(), signed_headers(generate_secret()), BODY, now=NOW)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_names_a_missing_header(header: str) -> None:
    secret = generate_secret()
    headers = signed_headers(secret)
    del headers[header]
    with pytest.raises(SignatureError) as caught:
        verify(secret, headers, BODY, now=NOW)
    assert caught.value.reason == f"missing {header} header"


def test_verify_treats_a_blank_header_as_missing() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match=r"^missing webhook-signature header$"):
        verify(secret, {**signed_headers(secret), "webhook-signature": "  "}, BODY, now=NOW)


@pytest.mark.parametrize("stamp", ["hello", "1.5", "-1", "+5", "1_000", "9" * 16, ""])
def test_verify_rejects_a_timestamp_that_is_not_an_integer(stamp: str) -> None:
    secret = generate_secret()
    headers = {**signed_headers(secret), "webhook-timestamp": stamp}
    expected = "missing webhook-timestamp header" if not stamp else "webhook-timestamp is not an integer"
    with pytest.raises(SignatureError, match=f"^{expected}"):
        verify(secret, headers, BODY, now=NOW)


def test_verify_rejects_an_old_timestamp() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, timestamp=NOW - 301)
    with pytest.raises(SignatureError, match=r"^webhook-timestamp is too old$"):
        verify(secret, headers, BODY, now=NOW)


def test_verify_rejects_a_timestamp_in_the_future() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, timestamp=NOW + 301)
    with pytest.raises(SignatureError, match="too new"):
        verify(secret, headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_verify_accepts_timestamps_at_the_edge_of_the_tolerance(offset: int) -> None:
    secret = generate_secret()
    verify(secret, signed_headers(secret, timestamp=NOW + offset), BODY, now=NOW)


def test_verify_tolerance_can_be_seconds_or_a_timedelta() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, timestamp=NOW - 60)
    verify(secret, headers, BODY, now=NOW, tolerance=60)
    verify(secret, headers, BODY, now=NOW, tolerance=timedelta(minutes=1))
    with pytest.raises(SignatureError, match="too old"):
        verify(secret, headers, BODY, now=NOW, tolerance=59)


def test_verify_now_can_be_an_aware_datetime() -> None:
    secret = generate_secret()
    verify(secret, signed_headers(secret), BODY, now=datetime.fromtimestamp(NOW, UTC))


def test_verify_uses_the_clock_by_default() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="too old"):
        verify(secret, signed_headers(secret, timestamp=NOW), BODY)  # NOW is in 2023


def test_verify_during_rotation_accepts_either_secret() -> None:
    new, old = generate_secret(), generate_secret()
    headers = signed_headers(new, old)
    verify(new, headers, BODY, now=NOW)  # a receiver already on the new secret
    verify(old, headers, BODY, now=NOW)  # a receiver still on the old one
    verify([generate_secret(), old], headers, BODY, now=NOW)  # a receiver that holds several


def test_verify_finds_the_valid_signature_among_others() -> None:
    secret = generate_secret()
    valid = sign(secret, "msg_1", NOW, BODY)
    offered = [
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2," + valid[3:],
        "v1a,AAAA",
        "garbage",
        "v1,not-base64!",
        valid,
    ]
    headers = {**signed_headers(secret), "webhook-signature": "  ".join(offered)}
    verify(secret, headers, BODY, now=NOW)


def test_verify_ignores_signatures_of_other_versions() -> None:
    secret = generate_secret()
    valid = sign(secret, "msg_1", NOW, BODY)
    headers = {**signed_headers(secret), "webhook-signature": "v2," + valid[3:]}
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(secret, headers, BODY, now=NOW)


def test_verify_survives_non_ascii_in_the_signature_header() -> None:
    secret = generate_secret()
    headers = {**signed_headers(secret), "webhook-signature": "v1,é"}
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(secret, headers, BODY, now=NOW)


def test_verify_needs_at_least_one_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        verify([], signed_headers(generate_secret()), BODY, now=NOW)


def test_verify_checks_the_timestamp_as_sent() -> None:
    secret = generate_secret()
    key = secret_key(secret)
    mac = hmac.new(key, f"msg_1.0{NOW}.".encode() + BODY, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": f"0{NOW}",
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    verify(secret, headers, BODY, now=NOW)


def test_signature_error_carries_its_reason() -> None:
    error = SignatureError("no matching signature")
    assert error.reason == str(error) == "no matching signature"


@given(st.binary(max_size=200), st.integers(min_value=-300, max_value=300))
def test_whatever_is_signed_verifies_within_tolerance(body: bytes, skew: int) -> None:
    secret = SPEC_SECRET
    verify(secret, signed_headers(secret, body=body, timestamp=NOW + skew), body, now=NOW)
