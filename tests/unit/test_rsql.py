"""RSQL parsing and its compilation to parameterised SQL: pure, no database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_engine.rsql import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Comparison,
    FieldKind,
    Node,
    Or,
    RsqlError,
    compile_data_filter,
    compile_filter,
    parse,
)


def cmp(selector: str, op: str, *values: str, at: int = 0) -> Comparison:
    return Comparison(selector, op, values, at)


def shape(node: Node) -> object:
    """The node without positions, for comparing trees."""
    match node:
        case Comparison():
            return (node.selector, node.op, node.values)
        case And():
            return ("and", *map(shape, node.children))
        case Or():
            return ("or", *map(shape, node.children))


def error_of(text: str) -> RsqlError:
    with pytest.raises(RsqlError) as caught:
        parse(text)
    return caught.value


# --- comparisons --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "canonical"),
    [
        ("==", "=="),
        ("!=", "!="),
        ("=gt=", "=gt="),
        (">", "=gt="),
        ("=ge=", "=ge="),
        (">=", "=ge="),
        ("=lt=", "=lt="),
        ("<", "=lt="),
        ("=le=", "=le="),
        ("<=", "=le="),
    ],
)
def test_every_single_value_operator_and_alias_parses_to_its_canonical_name(
    operator: str, canonical: str
) -> None:
    assert parse(f"amount{operator}5") == cmp("amount", canonical, "5")


@pytest.mark.parametrize("operator", ["=in=", "=out="])
def test_list_operators_take_a_parenthesised_list(operator: str) -> None:
    assert parse(f"status{operator}(paid,'two words',\"x\")") == cmp(
        "status", operator, "paid", "two words", "x"
    )


def test_list_operators_accept_a_single_element_list() -> None:
    assert parse("status=in=(paid)") == cmp("status", "=in=", "paid")


def test_fiql_operator_names_are_case_insensitive() -> None:
    assert parse("a=IN=(x)") == cmp("a", "=in=", "x")
    assert parse("a=Gt=1") == cmp("a", "=gt=", "1")


def test_whitespace_is_allowed_around_every_token() -> None:
    node = parse("  ( type == Payment ; status =in= ( a , 'b' ) )  ")
    assert shape(node) == ("and", ("type", "==", ("Payment",)), ("status", "=in=", ("a", "b")))


def test_comparison_position_is_the_index_of_its_selector() -> None:
    node = parse("a==1;  bb==2")
    assert isinstance(node, And)
    assert [child.position for child in node.children if isinstance(child, Comparison)] == [0, 7]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a==foo@example.com", "foo@example.com"),
        ("a==-5", "-5"),
        ("a==+4790000000", "+4790000000"),
        ("a==b=c", "b=c"),
        ("a==2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00+02:00"),
        ("a==ünïcödé", "ünïcödé"),
    ],
)
def test_unquoted_values_run_until_a_delimiter(text: str, value: str) -> None:
    assert parse(text) == cmp("a", "==", value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a=='Water'", "Water"),
        ('a=="Water"', "Water"),
        ("a==''", ""),
        ("a=='two words; (and, more)'", "two words; (and, more)"),
        ("a=='it\\'s'", "it's"),
        ('a=="say \\"hi\\""', 'say "hi"'),
        ('a=="it\'s"', "it's"),
        ("a=='\\q'", "q"),
        ("a=='=gt='", "=gt="),
    ],
)
def test_quoted_values_keep_everything_and_unescape_backslashes(text: str, value: str) -> None:
    assert parse(text) == cmp("a", "==", value)


def test_quoted_backslash_is_kept_verbatim_for_non_pattern_operators() -> None:
    assert parse("a=in=('C:\\\\dir','x\\*')") == cmp("a", "=in=", "C:\\dir", "x*")
    assert parse("a=gt='\\\\'") == cmp("a", "=gt=", "\\")


def test_pattern_values_keep_wildcards_and_escape_literal_stars_and_backslashes() -> None:
    assert parse("a==Wat*") == cmp("a", "==", "Wat*")
    assert parse("a!='*two words*'") == cmp("a", "!=", "*two words*")
    assert parse("a=='x\\*y*'") == cmp("a", "==", "x\\*y*")
    assert parse("a=='C:\\\\dir'") == cmp("a", "==", "C:\\\\dir")
    assert parse("a==C:\\dir") == cmp("a", "==", "C:\\\\dir")


def test_star_is_plain_text_in_list_and_ordering_operators() -> None:
    assert parse("a=in=(x*)") == cmp("a", "=in=", "x*")
    assert parse("a=gt=x*") == cmp("a", "=gt=", "x*")


@pytest.mark.parametrize(
    "selector", ["customer.address.city", "identityType", "identity-type_2", "a", "0", "data.items.0.sku"]
)
def test_selectors_allow_letters_digits_underscore_dash_and_dotted_paths(selector: str) -> None:
    assert parse(f"{selector}==x") == cmp(selector, "==", "x")


# --- logic --------------------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert shape(parse("a==1,b==2;c==3")) == (
        "or",
        ("a", "==", ("1",)),
        ("and", ("b", "==", ("2",)), ("c", "==", ("3",))),
    )
    assert shape(parse("a==1;b==2,c==3")) == (
        "or",
        ("and", ("a", "==", ("1",)), ("b", "==", ("2",))),
        ("c", "==", ("3",)),
    )


def test_parentheses_override_precedence() -> None:
    assert shape(parse("(a==1,b==2);c==3")) == (
        "and",
        ("or", ("a", "==", ("1",)), ("b", "==", ("2",))),
        ("c", "==", ("3",)),
    )


def test_words_and_or_are_connectives_in_any_case() -> None:
    expected = shape(parse("a==1;b==2,c==3"))
    assert shape(parse("a==1 and b==2 or c==3")) == expected
    assert shape(parse("a==1 AND b==2 Or c==3")) == expected
    assert shape(parse("a=='1'and(b==2)or c==3")) == shape(parse("a==1;(b==2),c==3"))


def test_words_and_or_are_selectors_and_values_where_a_comparison_is_expected() -> None:
    assert parse("and==or") == cmp("and", "==", "or")
    assert shape(parse("a==1 or or==and")) == ("or", ("a", "==", ("1",)), ("or", "==", ("and",)))


def test_nested_groups_of_the_same_kind_are_flattened() -> None:
    assert shape(parse("a==1;(b==2;(c==3;d==4))")) == (
        "and",
        ("a", "==", ("1",)),
        ("b", "==", ("2",)),
        ("c", "==", ("3",)),
        ("d", "==", ("4",)),
    )
    assert shape(parse("(a==1,b==2),c==3")) == (
        "or",
        ("a", "==", ("1",)),
        ("b", "==", ("2",)),
        ("c", "==", ("3",)),
    )


def test_redundant_parentheses_disappear() -> None:
    assert parse("((a==1))") == cmp("a", "==", "1", at=2)


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "empty expression", 0),
        ("   ", "empty expression", 0),
        ("type=='a' ;b==1)", "unexpected ')'", 15),
        ("type", "expected an operator such as ==", 4),
        ("type$x", "expected an operator such as ==, found '$'", 4),
        ("a=b", "expected an operator such as ==, found '='", 1),
        (
            "a=like=x",
            "unknown operator '=like='; use one of ==, !=, =in=, =out=, =gt=, >, =ge=, >=, =lt=, <, =le=, <=",
            1,
        ),
        ("a==", "expected a value", 3),
        ("a== ;b==1", "expected a value, found ';'", 4),
        ("a===b", "expected a value, found '='", 3),
        ("a==(x)", "== takes one value; only =in= and =out= take a list", 3),
        (">=1", "expected a selector, found '>'", 0),
        ("()", "expected a selector, found ')'", 1),
        ("a==1;", "expected a selector", 5),
        ("a==1 and", "expected a selector", 8),
        ("a==1 andy==2", "expected ';', ',', 'and', 'or' or the end of the expression, found 'a'", 5),
        ("a==1 b==2", "expected ';', ',', 'and', 'or' or the end of the expression, found 'b'", 5),
        ("a=='x'y", "expected ';', ',', 'and', 'or' or the end of the expression, found 'y'", 6),
        ("(a==1 b==2)", "expected ';', ',', 'and', 'or' or ')', found 'b'", 6),
        ("(a==1", "unclosed '('", 0),
        ("a==1;(b==2;(c==3)", "unclosed '('", 5),
        ("a=='Water", "unterminated quoted value starting", 3),
        ('a=in=(x,"y', "unterminated quoted value starting", 8),
        ("a=='x\\'", "unterminated quoted value starting", 3),
        ("a=in=x", "expected a list in parentheses after =in=, such as (a,b), found 'x'", 5),
        ("a=out=", "expected a list in parentheses after =out=, such as (a,b)", 6),
        ("a=in=()", "expected a value, found ')'", 6),
        ("a=in=(x,)", "expected a value, found ')'", 8),
        ("a=in=(x y)", "expected ',' or ')' in the value list, found 'y'", 8),
        ("a=in=(x", "unclosed '('", 5),
        (
            "a..b==1",
            "invalid selector 'a..b': use names of letters, digits, '_' and '-', joined by single dots",
            0,
        ),
        (
            "x==1;.a==1",
            "invalid selector '.a': use names of letters, digits, '_' and '-', joined by single dots",
            5,
        ),
        (
            "a.==1",
            "invalid selector 'a.': use names of letters, digits, '_' and '-', joined by single dots",
            0,
        ),
        ("a==x\x00y", "character '\\x00' is not allowed", 4),
        ("a==\ud800", "character '\\ud800' is not allowed", 3),
    ],
)
def test_errors_say_what_was_expected_and_where(text: str, message: str, position: int) -> None:
    error = error_of(text)
    assert (error.message, error.position) == (message, position)
    assert str(error) == f"{message} at position {position}"


def test_rsql_error_is_a_value_error() -> None:
    assert isinstance(error_of(")"), ValueError)


def test_expression_of_max_length_parses_and_one_more_character_is_refused() -> None:
    assert parse("a==" + "x" * (MAX_LENGTH - 3)) == cmp("a", "==", "x" * (MAX_LENGTH - 3))
    error = error_of("a==" + "x" * (MAX_LENGTH - 2))
    assert (error.message, error.position) == (
        f"expression is longer than {MAX_LENGTH} characters",
        MAX_LENGTH,
    )


def test_parentheses_nest_up_to_max_depth_and_no_deeper() -> None:
    assert parse("(" * MAX_DEPTH + "a==1" + ")" * MAX_DEPTH) == cmp("a", "==", "1", at=MAX_DEPTH)
    error = error_of("(" * (MAX_DEPTH + 1) + "a==1" + ")" * (MAX_DEPTH + 1))
    assert (error.message, error.position) == (f"parentheses nest deeper than {MAX_DEPTH} levels", MAX_DEPTH)


def test_depth_counts_nesting_not_the_number_of_groups() -> None:
    node = parse(";".join(["(a==1)"] * (MAX_DEPTH * 2)))
    assert isinstance(node, And) and len(node.children) == MAX_DEPTH * 2


# --- compile_filter -----------------------------------------------------------------------------------------

FIELDS = {
    "type": ("e.type", FieldKind.TEXT),
    "identityType": ("e.identity_type", FieldKind.TEXT),
    "identitytype": ("e.identity_type", FieldKind.TEXT),
    "time": ("e.time", FieldKind.TIME),
}


def columns(text: str, params: list[object] | None = None) -> tuple[str, list[object]]:
    params = [] if params is None else params
    return compile_filter(parse(text), FIELDS, params), params


@pytest.mark.parametrize(
    ("text", "sql", "params"),
    [
        ("type==Payment", "(e.type = $1::text)", ["Payment"]),
        ("type!=Payment", "(e.type IS DISTINCT FROM $1::text)", ["Payment"]),
        ("type=in=(a,b)", "(e.type = ANY($1::text[]))", [["a", "b"]]),
        ("type=out=(a,b)", "(e.type IS NULL OR e.type <> ALL($1::text[]))", [["a", "b"]]),
        ("type=gt=m", "(e.type > $1::text)", ["m"]),
        ("type>=m", "(e.type >= $1::text)", ["m"]),
        ("type<m", "(e.type < $1::text)", ["m"]),
        ("type=le=m", "(e.type <= $1::text)", ["m"]),
        ("type==Pay*", "(e.type LIKE $1::text ESCAPE '\\')", ["Pay%"]),
        ("type!=*ment", "(e.type IS NULL OR e.type NOT LIKE $1::text ESCAPE '\\')", ["%ment"]),
        ("identityType=='phone'", "(e.identity_type = $1::text)", ["phone"]),
        ("identitytype==phone", "(e.identity_type = $1::text)", ["phone"]),
    ],
)
def test_text_fields_compile_each_operator(text: str, sql: str, params: list[object]) -> None:
    assert columns(text) == (sql, params)


def test_like_pattern_escapes_percent_underscore_and_backslash_in_literal_parts() -> None:
    assert columns("type=='50%_off\\\\*'")[1] == ["50\\%\\_off\\\\%"]
    assert columns("type==a\\b*")[1] == ["a\\\\b%"]


def test_escaped_star_alone_is_an_exact_match_on_a_star() -> None:
    assert columns("type=='Water\\*'") == ("(e.type = $1::text)", ["Water*"])


def test_star_in_a_list_is_matched_literally() -> None:
    assert columns("type=in=('a*')") == ("(e.type = ANY($1::text[]))", [["a*"]])


def test_user_text_never_reaches_the_sql() -> None:
    sql, params = columns('type=="x\'); DROP TABLE e; --"')
    assert sql == "(e.type = $1::text)"
    assert params == ["x'); DROP TABLE e; --"]


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("time==2024-05-01T10:00:00Z", "(e.time = $1::timestamptz)"),
        ("time!=2024-05-01T10:00:00Z", "(e.time IS DISTINCT FROM $1::timestamptz)"),
        ("time=gt=2024-05-01T10:00:00Z", "(e.time > $1::timestamptz)"),
        ("time>=2024-05-01T10:00:00Z", "(e.time >= $1::timestamptz)"),
        ("time=lt=2024-05-01T10:00:00Z", "(e.time < $1::timestamptz)"),
        ("time<=2024-05-01T10:00:00Z", "(e.time <= $1::timestamptz)"),
    ],
)
def test_time_fields_compare_as_timestamptz(text: str, sql: str) -> None:
    assert columns(text) == (sql, [datetime(2024, 5, 1, 10, tzinfo=UTC)])


def test_time_lists_become_timestamptz_arrays() -> None:
    moments = [datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, 8, tzinfo=UTC)]
    assert columns("time=in=(2024-05-01,'2024-05-02T10:00+02:00')") == (
        "(e.time = ANY($1::timestamptz[]))",
        [moments],
    )
    assert columns("time=out=(2024-05-01,2024-05-02T08:00Z)") == (
        "(e.time IS NULL OR e.time <> ALL($1::timestamptz[]))",
        [moments],
    )


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T10:30", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        ("'2024-05-01 10:30:15.5'", datetime(2024, 5, 1, 10, 30, 15, 500000, tzinfo=UTC)),
        ("2024-05-01T10:30:00-05:00", datetime(2024, 5, 1, 15, 30, tzinfo=UTC)),
        ("2024-05-01T10:30:00+0530", datetime(2024, 5, 1, 5, tzinfo=UTC)),
    ],
)
def test_time_values_are_utc_aware_datetimes_with_date_meaning_midnight_and_naive_meaning_utc(
    value: str, moment: datetime
) -> None:
    [param] = columns(f"time>={value}")[1]
    assert param == moment
    assert isinstance(param, datetime) and param.utcoffset() == timedelta(0)


def test_time_params_keep_the_instant_of_an_offset_value() -> None:
    [param] = columns("time==2024-05-01T10:00:00+02:00")[1]
    assert param == datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    "value", ["yesterday", "2024-13-01", "1714550400", "0001-01-01T00:00:00+01:00", "''"]
)
def test_bad_time_values_are_refused_naming_field_and_value(value: str) -> None:
    with pytest.raises(RsqlError) as caught:
        columns(f"type==x;time>{value}")
    shown = value.strip("'")
    assert caught.value.message == (
        f"field 'time' needs a date-time such as 2024-05-01T10:00:00Z, not {shown!r}"
    )
    assert caught.value.position == 8


def test_bad_time_value_inside_a_list_is_refused() -> None:
    with pytest.raises(RsqlError, match="not 'soon'"):
        columns("time=in=(2024-05-01,soon)")


@pytest.mark.parametrize("text", ["time==2024-05-*", "time!=*"])
def test_wildcards_are_refused_on_time_fields(text: str) -> None:
    with pytest.raises(RsqlError) as caught:
        columns(text)
    assert caught.value.message == "wildcards are not allowed on time field 'time'"


def test_escaped_star_in_a_time_value_is_just_a_bad_time() -> None:
    with pytest.raises(RsqlError, match="needs a date-time"):
        columns("time=='2024\\*'")


def test_unknown_selector_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(RsqlError) as caught:
        columns("type==a;colour==red")
    assert (
        caught.value.message
        == "unknown field 'colour'; allowed fields: identityType, identitytype, time, type"
    )
    assert caught.value.position == 8


def test_selectors_are_matched_exactly_as_the_caller_lists_them() -> None:
    with pytest.raises(RsqlError, match="unknown field 'IdentityType'"):
        columns("IdentityType==phone")


def test_param_numbering_continues_after_prefilled_params() -> None:
    sql, params = columns("type==a,(time>2024-05-01;identityType=in=(phone,email))", ["workspace", 50])
    assert (
        sql == "((e.type = $3::text) OR ((e.time > $4::timestamptz) AND (e.identity_type = ANY($5::text[]))))"
    )
    assert params == ["workspace", 50, "a", datetime(2024, 5, 1, tzinfo=UTC), ["phone", "email"]]


def test_and_or_compile_to_parenthesised_groups_in_order() -> None:
    assert columns("type==a,type==b;type==c")[0] == (
        "((e.type = $1::text) OR ((e.type = $2::text) AND (e.type = $3::text)))"
    )


def test_hand_built_nodes_are_checked() -> None:
    with pytest.raises(RsqlError, match="unknown operator '=like='"):
        compile_filter(cmp("type", "=like=", "x"), FIELDS, [])
    with pytest.raises(RsqlError, match="wrong number of values for == on 'type'"):
        compile_filter(cmp("type", "==", "x", "y"), FIELDS, [])
    with pytest.raises(RsqlError, match="wrong number of values for =in= on 'type'"):
        compile_filter(cmp("type", "=in="), FIELDS, [])
    assert compile_filter(And(()), FIELDS, []) == "(TRUE)"
    assert compile_filter(Or(()), FIELDS, []) == "(FALSE)"


# --- compile_data_filter ------------------------------------------------------------------------------------


def data(text: str, params: list[object] | None = None) -> tuple[str, list[object]]:
    params = [] if params is None else params
    return compile_data_filter(parse(text), "e.data", params), params


PATH = "(e.data #>> $1::text[])"


@pytest.mark.parametrize(
    ("text", "sql", "value"),
    [
        ("category==Water", f"({PATH} = $2::text)", "Water"),
        ("category!=Water", f"({PATH} IS DISTINCT FROM $2::text)", "Water"),
        ("category==Wat*", f"({PATH} LIKE $2::text ESCAPE '\\')", "Wat%"),
        ("category!=Wat*", f"({PATH} IS NULL OR {PATH} NOT LIKE $2::text ESCAPE '\\')", "Wat%"),
        ("category=in=(Water,Gas)", f"({PATH} = ANY($2::text[]))", ["Water", "Gas"]),
        ("category=out=(Water,Gas)", f"({PATH} IS NULL OR {PATH} <> ALL($2::text[]))", ["Water", "Gas"]),
        ("category==5", f"({PATH} = $2::text)", "5"),
        ("category==true", f"({PATH} = $2::text)", "true"),
    ],
)
def test_data_equality_and_lists_compare_the_text_form_with_missing_fields_matching_only_negations(
    text: str, sql: str, value: object
) -> None:
    assert data(text) == (sql, [["category"], value])


def test_data_selector_is_split_into_a_path_param() -> None:
    assert data("customer.address.city==Oslo") == (
        f"({PATH} = $2::text)",
        [["customer", "address", "city"], "Oslo"],
    )


@pytest.mark.parametrize(
    ("operator", "sql_operator"), [("=gt=", ">"), (">=", ">="), ("=lt=", "<"), ("<=", "<=")]
)
def test_data_ordering_on_a_number_casts_guarded_text_to_numeric(operator: str, sql_operator: str) -> None:
    sql, params = data(f"amount{operator}-1.5e3")
    assert sql.startswith(f"(CASE WHEN {PATH} ~ '^")
    assert sql.endswith(f"$' THEN {PATH}::numeric END {sql_operator} $2::numeric)")
    assert params == [["amount"], Decimal("-1.5e3")]


def test_data_ordering_on_a_date_time_casts_guarded_text_to_timestamptz_with_naive_meaning_utc() -> None:
    sql, params = data("paidAt>2024-05-01T10:00:00+02:00")
    assert sql.startswith(f"(CASE WHEN {PATH} !~ '^")
    assert f"WHEN {PATH} ~ '[Tt ].*[Zz+-]' THEN {PATH}::timestamptz" in sql
    assert sql.endswith(f"ELSE {PATH}::timestamp AT TIME ZONE 'UTC' END > $2::timestamptz)")
    assert params == [["paidAt"], datetime(2024, 5, 1, 8, tzinfo=UTC)]


def test_data_ordering_on_other_text_compares_text() -> None:
    assert data("status=ge=m") == (f"({PATH} >= $2::text)", [["status"], "m"])


def test_data_ordering_with_a_number_like_but_unsafe_value_compares_text() -> None:
    assert data("amount>1e9999")[1] == [["amount"], "1e9999"]


@pytest.mark.parametrize("value", ["5", "+5", "-0.5", ".5", "5.", "1E+3", "12345678901234567890"])
def test_data_ordering_recognises_numbers(value: str) -> None:
    assert data(f"amount<{value}")[1] == [["amount"], Decimal(value)]


@pytest.mark.parametrize("selector", ["a..b", "a b", ".a", "a;b", "a'b"])
def test_hand_built_data_selectors_must_be_dotted_names(selector: str) -> None:
    with pytest.raises(RsqlError) as caught:
        compile_data_filter(cmp(selector, "==", "x", at=3), "e.data", [])
    assert caught.value.message.startswith(f"invalid data field {selector!r}")
    assert caught.value.position == 3


def test_data_param_numbering_continues_after_prefilled_params() -> None:
    sql, params = data("a==1;b!=2", ["workspace"])
    assert sql == (
        "(((e.data #>> $2::text[]) = $3::text) AND ((e.data #>> $4::text[]) IS DISTINCT FROM $5::text))"
    )
    assert params == ["workspace", ["a"], "1", ["b"], "2"]


# --- properties ---------------------------------------------------------------------------------------------

RSQL_CHARS = "ab.-_0 =!<>~()'\";,*\\inoutgelandor\t"


@settings(database=None, max_examples=500)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=RSQL_CHARS, max_size=60)))
def test_parse_only_ever_raises_rsql_error(text: str) -> None:
    try:
        parse(text)
    except RsqlError as error:
        assert 0 <= error.position <= len(text)


names = st.from_regex(r"[A-Za-z0-9_\-]{1,4}", fullmatch=True)
selectors = st.lists(names, min_size=1, max_size=3).map(".".join)
plain = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=6)
# A pattern as (its form in the AST, its form inside single quotes): a wildcard, a literal star, a
# literal backslash, or text.
pattern_parts = st.lists(
    st.one_of(
        st.sampled_from(["*", "\\*", "\\\\"]).map(lambda s: (s, s)),
        plain.filter(lambda s: not {"*", "\\"} & set(s)).map(lambda s: (s, s.replace("'", "\\'"))),
    ),
    max_size=4,
)
UNQUOTED = re.compile(r"""[^\s'"();,=!<>~][^\s'"();,]*""")


def quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_value(value: str) -> str:
    return value if UNQUOTED.fullmatch(value) else quoted(value)


SPELLINGS = {
    "==": ["=="],
    "!=": ["!="],
    "=in=": ["=in="],
    "=out=": ["=out="],
    "=gt=": [">", "=gt="],
    "=ge=": [">=", "=ge="],
    "=lt=": ["<", "=lt="],
    "=le=": ["<=", "=le="],
}


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[Node, str]:
    """A comparison and one way to write it."""
    selector = draw(selectors)
    op = draw(st.sampled_from(sorted(SPELLINGS)))
    spelling = draw(st.sampled_from(SPELLINGS[op]))
    if op in ("==", "!="):
        parts = draw(pattern_parts)
        value = "".join(ast_form for ast_form, _ in parts)
        written = "'" + "".join(quoted_form for _, quoted_form in parts) + "'"
        if UNQUOTED.fullmatch(value) and "\\" not in value:
            written = value
        return Comparison(selector, op, (value,), 0), f"{selector}{spelling}{written}"
    if op in ("=in=", "=out="):
        values = draw(st.lists(plain, min_size=1, max_size=3))
        written = "(" + ",".join(map(render_value, values)) + ")"
        return Comparison(selector, op, tuple(values), 0), f"{selector}{op}{written}"
    value = draw(plain)
    return Comparison(selector, op, (value,), 0), f"{selector}{spelling} {render_value(value)}"


def groups(children: st.SearchStrategy[tuple[Node, str]]) -> st.SearchStrategy[tuple[Node, str]]:
    """An And or Or of children of other kinds, joined by a symbol or a word."""

    @st.composite
    def group(draw: st.DrawFn) -> tuple[Node, str]:
        kinds: list[type[And] | type[Or]] = [And, Or]
        kind = draw(st.sampled_from(kinds))
        other_kinds = children.filter(lambda child: not isinstance(child[0], kind))
        members = draw(st.lists(other_kinds, min_size=2, max_size=3))
        separator = draw(st.sampled_from([";", " and "] if kind is And else [",", " or "]))
        texts = [f"({text})" if isinstance(node, Or) else text for node, text in members]
        return kind(tuple(node for node, _ in members)), separator.join(texts)

    return group()


trees = st.recursive(comparisons(), groups, max_leaves=8)


@settings(database=None, max_examples=300)
@given(trees)
def test_rendered_trees_parse_back_to_the_same_tree(tree: tuple[Node, str]) -> None:
    node, text = tree
    assert shape(parse(text)) == shape(node)


SQL_CONSTANTS = re.compile(r"ESCAPE '\\'|'UTC'|'\[Tt \]\.\*\[Zz\+-\]'|'\^[^']*\$'")


@settings(database=None, max_examples=300)
@given(trees)
def test_compiled_data_sql_holds_no_user_text_and_numbers_every_param(tree: tuple[Node, str]) -> None:
    params: list[object] = ["prefilled"]
    sql = compile_data_filter(parse(tree[1]), "e.data", params)
    assert "'" not in SQL_CONSTANTS.sub("", sql)
    assert max(int(n) for n in re.findall(r"\$(\d+)", sql)) == len(params)
    assert "$1" not in re.sub(r"\$1\d", "", sql)
