"""Identity types and identity normalisation: pure, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journey_engine.errors import BadRequest
from journey_engine.identities import (
    MAX_LENGTH,
    IdentityError,
    IdentityType,
    check_region,
    guess_type,
    normalise,
    parse_identity_type,
    previous_identity_candidates,
)

# --- identity types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("phone", IdentityType.PHONE),
        ("email", IdentityType.EMAIL),
        ("customerId", IdentityType.CUSTOMER_ID),
        ("temporaryId", IdentityType.TEMPORARY_ID),
        ("socialId", IdentityType.SOCIAL_ID),
        ("PHONE", IdentityType.PHONE),
        ("customerid", IdentityType.CUSTOMER_ID),
        ("CUSTOMERID", IdentityType.CUSTOMER_ID),
        ("TemporaryID", IdentityType.TEMPORARY_ID),
        ("socialid", IdentityType.SOCIAL_ID),
        (" Email ", IdentityType.EMAIL),
    ],
)
def test_identity_type_accepts_any_case_and_gives_canonical_spelling(
    given_name: str, expected: IdentityType
) -> None:
    assert parse_identity_type(given_name) is expected


def test_identity_type_values_are_the_jds_spellings() -> None:
    assert [t.value for t in IdentityType] == ["phone", "email", "customerId", "temporaryId", "socialId"]
    assert str(IdentityType.CUSTOMER_ID) == "customerId"


@pytest.mark.parametrize("bad", ["mobile", "", "customer_id", "e-mail", None, 3, ["phone"]])
def test_unknown_identity_type_is_an_error_listing_the_types(bad: object) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_identity_type(bad)
    assert str(caught.value) == "identitytype: must be one of phone, email, customerId, temporaryId, socialId"
    assert caught.value.field == "identitytype"


def test_identity_error_is_a_value_error_and_a_bad_request_with_one_problem() -> None:
    with pytest.raises(IdentityError) as caught:
        normalise("email", "nope")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.status == 400
    [problem] = caught.value.problems
    assert (problem.field, problem.reason) == ("identity", "'nope' is not a valid email address")


# --- phone -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "+12263762555",
        "12263762555",
        "(226) 376-2555",
        "226-376-2555",
        " 12263762555",
        "226.376.2555",
        "+1 226 376 2555",
        "  +1 (226) 376-2555  ",
        "2263762555",
    ],
)
def test_phone_spellings_normalise_to_one_e164_number(value: str) -> None:
    assert normalise(IdentityType.PHONE, value, "US") == "+12263762555"


def test_phone_leading_space_is_a_plus_lost_in_a_url() -> None:
    # "+44..." put unencoded in a query string arrives as " 44..."; read in region US it is not a US number
    assert normalise("phone", " 442071838750", "US") == "+442071838750"


def test_phone_without_leading_space_is_read_in_the_default_region() -> None:
    assert normalise("phone", "020 7183 8750", "GB") == "+442071838750"
    assert normalise("phone", "02071838750", "GB") == "+442071838750"


def test_phone_type_may_be_given_as_a_string_in_any_case() -> None:
    assert normalise("PHONE", "226-376-2555") == "+12263762555"


@pytest.mark.parametrize(
    "value",
    [
        "123",
        "12",
        "abc",
        "1-800-FLOWERS",
        "+1 226 376 2555 ext. 12",
        "226-376-2555x",
        "++12263762555",
        "+",
        "-",
        "()",
    ],
)
def test_impossible_phone_number_is_an_error_quoting_it(value: str) -> None:
    with pytest.raises(IdentityError) as caught:
        normalise("phone", value)
    assert str(caught.value) == f"identity: {value.strip()!r} is not a valid phone number"


def test_phone_error_quotes_a_long_value_cut_short() -> None:
    with pytest.raises(IdentityError) as caught:
        normalise("phone", "1" * 100)
    assert caught.value.reason == f"{'1' * 64 + '…'!r} is not a valid phone number"


def test_error_field_can_be_named_by_the_caller() -> None:
    with pytest.raises(IdentityError) as caught:
        normalise("phone", "12", field="previousidentity")
    assert str(caught.value).startswith("previousidentity: ")


# --- email -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jes@gmail.com", "jes@gmail.com"),
        ("  Jes@Gmail.COM \n", "jes@gmail.com"),
        ("STRASSE@EXAMPLE.DE", "strasse@example.de"),
        ("Straße@example.de", "strasse@example.de"),  # casefold, not lower
        ("a@b", "a@b"),
    ],
)
def test_email_is_stripped_and_casefolded(value: str, expected: str) -> None:
    assert normalise(IdentityType.EMAIL, value) == expected


@pytest.mark.parametrize("value", ["jes", "@gmail.com", "jes@", "a@b@c", "j es@gmail.com", "jes@gm ail.com"])
def test_value_that_does_not_look_like_an_email_is_an_error(value: str) -> None:
    with pytest.raises(IdentityError) as caught:
        normalise("email", value)
    assert caught.value.reason == f"{value.strip()!r} is not a valid email address"


# --- ids -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [IdentityType.CUSTOMER_ID, IdentityType.TEMPORARY_ID, IdentityType.SOCIAL_ID]
)
def test_ids_are_stripped_and_keep_their_case(kind: IdentityType) -> None:
    assert normalise(kind, "  AbC-123 x ") == "AbC-123 x"


@pytest.mark.parametrize("kind", list(IdentityType))
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_identity_is_an_error_for_every_type(kind: IdentityType, value: str) -> None:
    with pytest.raises(IdentityError, match=r"^identity: must not be empty$"):
        normalise(kind, value)


@pytest.mark.parametrize("kind", list(IdentityType))
def test_identity_longer_than_512_characters_is_an_error(kind: IdentityType) -> None:
    with pytest.raises(IdentityError, match="at most 512 characters"):
        normalise(kind, "a" * (MAX_LENGTH - 6) + "@b.com" + "x")


def test_identity_of_exactly_512_characters_is_accepted() -> None:
    assert normalise("customerId", "c" * MAX_LENGTH) == "c" * MAX_LENGTH
    assert normalise("customerId", " " + "c" * MAX_LENGTH + " ") == "c" * MAX_LENGTH


@pytest.mark.parametrize("value", [None, 12263762555, ["x"], {"a": 1}])
def test_identity_that_is_not_a_string_is_an_error(value: object) -> None:
    with pytest.raises(IdentityError, match=r"^identity: must be a string$"):
        normalise("customerId", value)


# --- regions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), [("US", "US"), ("gb", "GB"), (" de ", "DE")])
def test_known_region_is_accepted_upper_cased(code: str, expected: str) -> None:
    assert check_region(code) == expected


@pytest.mark.parametrize("code", ["XX", "", "USA", "001", "uk"])
def test_unknown_region_is_an_error_naming_it(code: str) -> None:
    with pytest.raises(IdentityError) as caught:
        check_region(code)
    assert caught.value.field == "default_region"
    assert repr(code) in caught.value.reason


# --- untyped previous identities -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sdeo@cisco.com", IdentityType.EMAIL),
        ("+12263762555", IdentityType.PHONE),
        ("226-376-2555", IdentityType.PHONE),
        ("2342s-sdsd-342345", IdentityType.TEMPORARY_ID),
        ("9ab65fdf-9643-417f-9974-ad72cae0e10f", IdentityType.TEMPORARY_ID),
        ("234", IdentityType.TEMPORARY_ID),
    ],
)
def test_guess_type_prefers_email_then_phone_then_temporary_id(value: str, expected: IdentityType) -> None:
    assert guess_type(value) is expected


def test_previous_identity_candidates_give_best_guess_first_then_the_stripped_value() -> None:
    assert previous_identity_candidates(" Sdeo@Cisco.com ") == ("sdeo@cisco.com", "Sdeo@Cisco.com")
    assert previous_identity_candidates("2263762555") == ("+12263762555", "2263762555")
    assert previous_identity_candidates("+12263762555") == ("+12263762555",)
    assert previous_identity_candidates(" 9ab65fdf-9643 ") == ("9ab65fdf-9643",)


@pytest.mark.parametrize("marker", ["none", "None", "NONE", "", "  ", "null", "undefined", "unknown"])
def test_no_value_markers_in_previous_identity_link_nothing(marker: str) -> None:
    assert previous_identity_candidates(marker) == ()


def test_previous_identity_longer_than_512_characters_is_an_error() -> None:
    with pytest.raises(IdentityError, match=r"^previousidentity: must be at most 512 characters$"):
        previous_identity_candidates("x" * 513)


# --- properties ------------------------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_normalising_is_idempotent_for_ids_and_emails(value: str) -> None:
    for kind in (IdentityType.CUSTOMER_ID, IdentityType.EMAIL):
        try:
            once = normalise(kind, value)
        except IdentityError:
            continue
        assert normalise(kind, once) == once


@given(
    st.integers(min_value=200, max_value=999),
    st.integers(min_value=200, max_value=999),
    st.integers(min_value=0, max_value=9999),
)
def test_us_phone_formats_agree(area: int, exchange: int, line: int) -> None:
    national = f"{area}{exchange}{line:04d}"
    spellings = [
        f"+1{national}",
        f"1{national}",
        f"({area}) {exchange}-{line:04d}",
        f"{area}-{exchange}-{line:04d}",
    ]
    results = set()
    for spelling in spellings:
        try:
            results.add(normalise("phone", spelling, "US"))
        except IdentityError:
            results.add("invalid")
    assert len(results) == 1
    assert results.pop() in ("invalid", f"+1{national}")


@given(st.text(max_size=40))
def test_normalise_raises_only_identity_errors(value: str) -> None:
    for kind in IdentityType:
        try:
            result = normalise(kind, value)
        except IdentityError:
            continue
        assert result and len(result) <= MAX_LENGTH
