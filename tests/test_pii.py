"""The PII rule, as a table derived from its text, and end to end through POST /event.

The rule: a property key is stripped when, lower-cased with every non-alphanumeric character
removed, it contains `email`, `phone`, `password` or `passwd`, or when one of its words
(split at non-alphanumerics and camelCase boundaries) is `ssn`.
"""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import unquote

import pytest

from datalook.extensions import db
from datalook.ingest.pii import is_pii_key, is_pii_value, strip_pii
from tests.factories import bearer, create_token, stored_events

STRIPPED = [
    # The examples of the rule.
    "Email",
    "user_email",
    "emailAddress",
    "e-mail",
    "phone_number",
    "Telephone",
    "PASSWORD",
    "password_confirmation",
    "passwd",
    "ssn",
    "customer_SSN",
    "ssnLast4",
    # Substrings survive any separators once they are squashed away.
    "EMAIL",
    "E.Mail",
    "e_mail",
    "user e-mail",
    "E\u200bmail",  # a zero-width space is not alphanumeric either
    "emails_sent",
    "EmailVerified",
    "billingEmail2",
    "mobilePhone",
    "ph-one",
    "iPhoneModel",
    "headphones",  # the rule is a substring rule: false positives included
    "pass_word",
    "Pass Word",
    "new-password",
    "old_passwd_hash",
    "PASSWD",
    # ssn as a word.
    "SSN",
    "Ssn",
    "ssn_hash",
    "user.ssn",
    "ssn-last-4",
    "customerSSN",
    "customerSsn",
    "classNameSsn",
    "SSN_last4",
    "my ssn",
    "ssn ",
    # Addresses, payment data and network addresses (the extended rule).
    "address",
    "billing_address",
    "shippingAddress",
    "ip",
    "IP",
    "client_ip",
    "ipAddress",
    "ip-v4",
    "card",
    "credit_card",
    "creditCardNumber",
    "card_number",
    "cardNumber",
    "CARD",
    "iban",
    "IBAN",
    "payout_iban",
    "cvv",
    "card_cvc",
]

KEPT = [
    "classname",
    "plan",
    "session",
    "lesson",
    "mission",
    "assns",
    "Assn",
    "ssns",  # a word that merely starts with ssn
    "crossness",
    "grassNumber",
    "className",
    "zip",
    "tip",
    "shipping",
    "cardinal",
    "discard",
    "scorecard",
    "caribbean",
    "ipsum",
    "recipe",
    "username",
    "user_id",
    "mail",  # not "email"
    "e_mai",
    "telefon",
    "phon",
    "pass",
    "pw",
    "passenger",
    "social_security_number",  # not in the rule
    "sn",
    "s_s_n",
    "",
]


@pytest.mark.parametrize("key", STRIPPED)
def test_pii_keys_are_recognised(key):
    assert is_pii_key(key)


@pytest.mark.parametrize("key", KEPT)
def test_ordinary_keys_are_kept(key):
    assert not is_pii_key(key)


PII_VALUES = [
    "jane@example.com",
    " Jane.Doe+news@mail.example.co.uk ",
    "contact me at jane@example.com please",
    "4111 1111 1111 1111",  # a test Visa number (Luhn-valid)
    "4111-1111-1111-1111",
    "5500005555555559",
    "378282246310005",  # a test Amex number
    "DE89 3704 0044 0532 0130 00",  # the standard example IBAN
    "GB82WEST12345698765432",
    "gb82 west 1234 5698 7654 32",
    "203.0.113.7",
    "2001:db8::1",
    "::ffff:192.0.2.1",
]

ORDINARY_VALUES = [
    "pro",
    "4111 1111 1111 1112",  # fails the Luhn check
    "1234567890123",  # 13 digits, not Luhn-valid
    "12345",
    "order-2026-0001",
    "DE00 3704 0044 0532 0130 00",  # wrong IBAN check digits
    "1.2.3",
    "v1.2.3.4",
    "a@b",  # no domain
    "@handle",
    "10:30",
    "ab" * 40,
    "",
]


@pytest.mark.parametrize("value", PII_VALUES)
def test_values_that_look_like_personal_data_are_recognised(value):
    assert is_pii_value(value)
    kept, stripped = strip_pii({"plan": "pro", "note": value})
    assert kept == {"plan": "pro"} and stripped == ["note"]


@pytest.mark.parametrize("value", [*ORDINARY_VALUES, 4111111111111111, 3.5, True])
def test_ordinary_values_are_kept(value):
    assert not is_pii_value(value)
    assert strip_pii({"note": value}) == ({"note": value}, [])


def test_strip_pii_keeps_order_and_names_what_it_removed():
    kept, stripped = strip_pii({"plan": "pro", "Email": "a@b.c", "seats": 3, "ssn": "1"})
    assert kept == {"plan": "pro", "seats": 3}
    assert stripped == ["Email", "ssn"]
    untouched = {"plan": "pro"}
    assert strip_pii(untouched) == (untouched, [])


def test_stripped_keys_are_not_stored_and_are_reported(app):
    made = create_token(app)
    properties = {
        "plan": "starter",
        "classname": "A",
        "user_email": "alice@example.com",
        "Telephone": "+1 555 0100",
        "ssnLast4": "1234",
        "password_confirmation": "hunter2-secret",
        "e-mail address": "bob@example.com",
        "note": "values are inspected too: mail me at carol@example.com",
        "card_brand": "visa",
        "reference": "4111 1111 1111 1111",
    }
    response = app.test_client().post(
        "/event",
        # Sent as written (the test client's json= would sort the keys).
        data=json.dumps({"event_name": "custom", "page_path": "/p", "properties": properties}),
        content_type="application/json",
        headers=bearer(made.token),
    )
    assert response.status_code == 204
    expected_stripped = [
        "user_email",
        "Telephone",
        "ssnLast4",
        "password_confirmation",
        "e-mail address",
        "note",
        "card_brand",
        "reference",
    ]
    header = response.headers["DataLook-Stripped-Keys"]
    assert [unquote(part.strip()) for part in header.split(",")] == expected_stripped
    (stored,) = stored_events(app, made.site_id)
    assert stored["properties"] == {
        "plan": "starter",
        "classname": "A",
    }
    assert stored["stripped_keys"] == expected_stripped
    # The values are nowhere in the database file.
    with app.app_context():
        path = db.engine.url.database
    with sqlite3.connect(path) as raw:
        dump = "\n".join(raw.iterdump())
    for secret in (
        "alice@example.com",
        "+1 555 0100",
        "1234",
        "hunter2-secret",
        "bob@",
        "carol@",
        "4111 1111",
    ):
        assert secret not in dump


def test_no_stripped_keys_header_when_nothing_is_stripped(app):
    made = create_token(app)
    response = app.test_client().post(
        "/event",
        json={"event_name": "custom", "page_path": "/p", "properties": {"plan": "pro"}},
        headers=bearer(made.token),
    )
    assert response.status_code == 204
    assert "DataLook-Stripped-Keys" not in response.headers
    assert stored_events(app, made.site_id)[0]["stripped_keys"] == []


def test_stripped_keys_header_is_header_safe(app):
    made = create_token(app)
    key = 'e-mail, \u00e9\r\n"x"'  # a comma, non-ASCII, CR LF and quotes in one key
    response = app.test_client().post(
        "/event",
        json={"event_name": "custom", "page_path": "/p", "properties": {key: "v", "plan": 1}},
        headers=bearer(made.token),
    )
    assert response.status_code == 204
    header = response.headers["DataLook-Stripped-Keys"]
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert unquote(header) == key
    assert stored_events(app, made.site_id)[0]["stripped_keys"] == [key]
