"""A policy's ``approval.notify``: http(s) URLs only, a format, absent from dumps when empty."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from luminaguard.config.models.policy import Approval, Webhook


def test_a_webhook_has_an_http_url_and_a_format() -> None:
    approval = Approval.model_validate(
        {"notify": [{"url": "https://hooks.example/T/B/x", "format": "slack"}]}
    )
    assert approval.notify == [Webhook(url="https://hooks.example/T/B/x", format="slack")]
    assert approval.model_dump(mode="json")["notify"][0]["format"] == "slack"


def test_no_webhooks_leave_the_dump_as_before() -> None:
    """Plans hashed before webhooks existed keep their hash."""
    assert "notify" not in Approval().model_dump(mode="json")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://",
        "hooks.example/x",
        "https://user:pass@hooks.example/x",
        "https://hooks.example/x y",
        "https://hooks.example/\nx",
        "https://hooks.example:port/x",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        Webhook.model_validate({"url": url, "format": "generic"})


def test_the_format_is_slack_or_generic() -> None:
    with pytest.raises(ValidationError):
        Webhook.model_validate({"url": "https://hooks.example/x", "format": "teams"})
    with pytest.raises(ValidationError):
        Webhook.model_validate({"url": "https://hooks.example/x"})
