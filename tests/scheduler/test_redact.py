"""The Redactor on values: every string of a structure, every encoding of a secret."""

from __future__ import annotations

import base64
import json

import pytest

from luminaguard.errors import UsageError
from luminaguard.scheduler.redact import MIN_SECRET_LENGTH, Redactor, check_secrets

SECRET = 'tok"en\\é-1234'


def test_keys_and_nested_values_are_redacted() -> None:
    redact = Redactor([SECRET])
    value = {SECRET: [SECRET, ("x" + SECRET,)], "n": 1, "none": None, "obj": Exception(SECRET)}
    assert redact.value(value) == {"***": ["***", ["x***"]], "n": 1, "none": None, "obj": "***"}


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b"user:ab"])
def test_base64_inside_a_longer_text_at_any_offset(prefix: bytes) -> None:
    text = base64.b64encode(prefix + SECRET.encode() + b"-tail").decode()
    assert Redactor([SECRET])(text) != text


def test_json_text_of_the_redacted_value_holds_no_form_of_the_secret() -> None:
    redact = Redactor([SECRET])
    text = json.dumps(redact.value({"a": f"{SECRET} {json.dumps(SECRET)} {SECRET!r}"}))
    assert "tok" not in text and "***" in text


def test_nothing_to_redact_leaves_text_alone() -> None:
    assert Redactor()("abc") == "abc"
    assert Redactor([SECRET])("unrelated text") == "unrelated text"


def test_a_short_secret_is_refused_naming_its_variable() -> None:
    check_secrets({"LONG_ENOUGH": "x" * MIN_SECRET_LENGTH})
    with pytest.raises(UsageError, match=r"SHORT \(3 characters\) is shorter than 8"):
        check_secrets({"SHORT": "abc", "LONG_ENOUGH": "x" * 8})


def test_the_token_of_a_header_value_is_redacted_alone() -> None:
    redact = Redactor(["Bearer abcdefgh12345"])
    assert redact("sent Bearer abcdefgh12345; rejected abcdefgh12345") == "sent ***; rejected ***"
    assert redact("Bearer of news") == "Bearer of news"  # short words stay


def test_json_quoted_inside_json_is_redacted() -> None:
    inner = json.dumps({"token": SECRET}, ensure_ascii=False)
    text = Redactor([SECRET])(json.dumps({"body": inner}, ensure_ascii=False))
    assert "tok\\" not in text and "1234" not in text and "***" in text
