"""One server per state folder, and commands know it is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from luminaguard.errors import UsageError
from luminaguard.server.claim import INFO, ServerClaim, serving


def test_a_second_server_on_one_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = ServerClaim(tmp_path, "http://127.0.0.1:8420")
    try:
        assert serving(tmp_path) == {"pid": str(os.getpid()), "url": "http://127.0.0.1:8420"}
        assert (tmp_path / INFO).stat().st_mode & 0o777 == 0o600
        with pytest.raises(UsageError, match=rf"serves {tmp_path} already \(PID {os.getpid()}"):
            ServerClaim(tmp_path, "http://127.0.0.1:8421")
    finally:
        first.release()
    assert serving(tmp_path) is None
    ServerClaim(tmp_path, "http://127.0.0.1:8421").release()  # free again


def test_a_dead_servers_claim_is_free(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path;"
        "from luminaguard.server.claim import ServerClaim;"
        "ServerClaim(Path(sys.argv[1]), 'http://x'); os._exit(0)"  # dies holding it
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert (tmp_path / INFO).exists()  # left behind by the dead server
    assert serving(tmp_path) is None  # but the lock says nobody serves
    ServerClaim(tmp_path, "http://127.0.0.1:8420").release()
