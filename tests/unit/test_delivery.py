"""The pure parts of delivery: retry timing, Retry-After, the egress deny list, rule-to-attribute matching,
and the deliveries cursor (no database, no network)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from actions.delivery import DEFAULT_SCHEDULE, backoff, retry_after
from actions.egress import DEFAULT_DENY, DestinationDenied, check_url, denied, parse_networks
from actions.models import ActionSpec, attribute_for, rule_problems
from actions.outbox import DeliveryCursor
from profiles.templates import TemplateSpec

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DENY = parse_networks(DEFAULT_DENY)


# --- backoff and Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(1, len(DEFAULT_SCHEDULE) + 1))
def test_each_retry_waits_its_scheduled_delay_within_ten_percent(attempt: int) -> None:
    delay = DEFAULT_SCHEDULE[attempt - 1]
    rng = random.Random(attempt)
    for _ in range(50):
        when = backoff(attempt, DEFAULT_SCHEDULE, NOW, rng)
        assert when is not None
        assert delay * 0.9 <= (when - NOW).total_seconds() <= delay * 1.1


def test_after_the_last_scheduled_attempt_there_is_no_retry() -> None:
    assert backoff(len(DEFAULT_SCHEDULE) + 1, DEFAULT_SCHEDULE, NOW, random.Random(0)) is None
    assert backoff(2, (1.0,), NOW, random.Random(0)) is None


def test_retry_after_in_seconds() -> None:
    assert retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert retry_after(" 0 ", NOW) == NOW


def test_retry_after_as_an_http_date() -> None:
    assert retry_after("Wed, 01 May 2024 12:05:00 GMT", NOW) == NOW + timedelta(minutes=5)


def test_retry_after_in_the_past_means_now_and_beyond_a_day_is_capped() -> None:
    assert retry_after("Tue, 30 Apr 2024 12:00:00 GMT", NOW) == NOW
    assert retry_after(str(7 * 86400), NOW) == NOW + timedelta(hours=24)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5"])
def test_a_missing_or_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert retry_after(value, NOW) is None


# --- egress --------------------------------------------------------------------------------------------


def test_networks_parse_from_cidr_text_and_a_bad_one_is_named() -> None:
    assert [str(n) for n in parse_networks([" 10.0.0.0/8", "fd00::/8", "192.168.1.7"])] == [
        "10.0.0.0/8", "fd00::/8", "192.168.1.7/32"
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"'10\.0\.0/33' is not a network"):
        parse_networks(["10.0.0/33"])


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fe80::1", "fe80::1%eth0", "::ffff:169.254.169.254", "fd00:ec2::254",
     "100.100.100.200", "0.0.0.0", "::"],
)  # fmt: skip
def test_metadata_and_link_local_addresses_are_denied_by_default(address: str) -> None:
    assert denied(address, DENY)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"])
def test_other_addresses_are_allowed_by_default(address: str) -> None:
    assert not denied(address, DENY)


def test_check_url_refuses_a_denied_ip_literal_and_leaves_names_to_the_resolver() -> None:
    for url in ["http://169.254.169.254/latest/meta-data", "https://[fe80::1]:8443/x"]:
        with pytest.raises(DestinationDenied):
            check_url(url, DENY)
    check_url("http://metadata.example.com/", DENY)
    check_url("http://127.0.0.1:9000/hook", DENY)
    check_url("https://[2001:db8::1]/hook", DENY)


# --- rules against the template's attributes -----------------------------------------------------------


def _template(*triples: tuple[str, str, str]) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {"name": "t", "attributes": [
            {"event": e, "metaDataType": "string", "metaData": f, "limit": 0, "displayName": f"a{i}",
             "lookBackDurationType": "minutes", "lookBackPeriod": 5, "aggregationMode": m}
            for i, (e, f, m) in enumerate(triples)]}
    )  # fmt: skip


def _action(*conditions: str) -> ActionSpec:
    rules = {"logic": "AND", "args": list(conditions)} if len(conditions) > 1 else conditions[0]
    return ActionSpec.model_validate({"name": "a", "rules": rules})


def test_a_leaf_reads_the_attribute_with_its_exact_event_field_and_mode() -> None:
    template = _template(("Call", "queue", "Count"), ("Call", "queue", "Value"))
    assert attribute_for(template, "Call", "queue", "Value") == 1
    assert attribute_for(template, "Call", "queue", "Count") == 0


def test_without_an_exact_match_the_one_attribute_of_that_event_and_field_is_read() -> None:
    template = _template(("Closed Queue", "category", "Count"))
    assert attribute_for(template, "Closed Queue", "category", "Value") == 0  # the JDS sample action


def test_a_leaf_matching_several_attributes_loosely_or_none_reads_nothing() -> None:
    template = _template(("Call", "queue", "Count"), ("Call", "queue", "Distinct"))
    assert attribute_for(template, "Call", "queue", "Value") is None
    assert attribute_for(template, "Call", "agent", "Count") is None
    assert attribute_for(template, "Chat", "queue", "Count") is None


def test_rule_problems_name_each_leaf_that_reads_nothing_and_what_the_template_has() -> None:
    template = _template(("Closed Queue", "category", "Count"))
    spec = _action("Closed Queue,category,string,Value GTE 2", "Payment,amount,integer,Sum GT 5",
                   "Closed Queue,reason,string,Value EQ x")  # fmt: skip
    problems = rule_problems(spec, template)
    assert [field for field, _ in problems] == ["rules", "rules"]
    assert problems[0][1] == (
        "'Payment,amount,integer,Sum GT 5' matches no attribute of the template "
        "(it has: Closed Queue,category,Count)"
    )
    assert problems[1][1].startswith("'Closed Queue,reason,string,Value EQ x' matches no attribute")
    assert rule_problems(_action("Closed Queue,category,string,Value GTE 2"), template) == []


# --- deliveries cursor ---------------------------------------------------------------------------------


def test_a_deliveries_cursor_round_trips() -> None:
    cursor = DeliveryCursor(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "msg_abc")
    assert DeliveryCursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("text", ["zz", "", "eyJ0IjoxfQ", "eyJ0IjoiMjAyNC0wNS0wMVQxMjowMDowMCIsImQiOiJ4In0"])
def test_text_that_is_not_a_deliveries_cursor_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        DeliveryCursor.decode(text)
