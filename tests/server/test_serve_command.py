"""``luminaguard serve``'s refusals before it binds anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliRunner


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "example.org"])
def test_plain_http_beyond_loopback_is_refused(cli: CliRunner, host: str, tmp_path: Path) -> None:
    result = cli("serve", "--host", host, "--state", str(tmp_path))
    assert result.code == 1
    assert f"refusing plain HTTP on {host}" in result.err
    assert "--insecure" in result.err


def test_half_a_tls_pair_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("serve", "--tls-cert", "cert.pem", "--state", str(tmp_path))
    assert result.code == 1
    assert "--tls-cert and --tls-key go together" in result.err


def test_a_concurrency_below_one_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("serve", "--concurrency", "0", "--state", str(tmp_path))
    assert result.code == 1
    assert "at least 1" in result.err


def test_a_public_url_that_is_not_http_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("serve", "--public-url", "javascript:alert(1)", "--state", str(tmp_path))
    assert result.code == 1
    assert "--public-url: the URL is not http:// or https:// with a host" in result.err
