"""``logs.error_text``: what of an error goes into a log line or a stored ``last_error``."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from merchant_backend.logs import error_text


def test_a_database_errors_detail_with_the_refused_row_stays_out() -> None:
    # PostgreSQL's words for a NOT NULL violation, as psycopg puts them in the exception.
    orig = Exception(
        'null value in column "name" of relation "merchants" violates not-null constraint\n'
        "DETAIL:  Failing row contains (mer_1, null, jane@example.com, 4242).\n"
    )
    exc = IntegrityError("INSERT INTO merchants (id, name) VALUES (%s, %s)", None, orig)
    text = error_text(exc)
    assert text.startswith("IntegrityError: ")
    assert "violates not-null constraint" in text
    assert "jane@example.com" not in text
    assert "Failing row" not in text
    assert "INSERT INTO" not in text


def test_secrets_are_redacted_and_the_text_is_bounded() -> None:
    exc = ValueError("bad key sk_test_" + "a" * 40 + " " + "x" * 1000)
    text = error_text(exc)
    assert "aaaa" not in text and "sk_test_[redacted]" in text
    assert len(text) == 300
    assert error_text(RuntimeError("")) == "RuntimeError: "
