"""web_demo/tools/serve.js on bad input (issue 33 item 8): a request that is not valid
percent-encoding is a 400 and the server keeps serving; an --host it cannot listen on is one line
and exit 2; a link inside a --mount folder that leaves the served folders is refused, while a link
from one served folder into another is followed (the browser tests' altered copies)."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import WEB_DEMO, node_binary, serving


def get(base: str, raw_path: str) -> tuple[int, bytes]:
    """GET a raw (unnormalised) path, as curl sends it."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    """A mount with a file, a link out of every served folder, a link into another mount, and the
    other mount."""
    outside, mount, other = tmp_path / "outside", tmp_path / "mount", tmp_path / "other"
    for d in (outside, mount, other):
        d.mkdir()
    (outside / "secret.txt").write_text("not to be served\n")
    (other / "shared.txt").write_text("shared\n")
    (mount / "plain.txt").write_text("plain\n")
    (mount / "leak.txt").symlink_to(outside / "secret.txt")
    (mount / "leakdir").symlink_to(outside)
    (mount / "shared.txt").symlink_to(other / "shared.txt")
    return {"exp": mount, "other": other}


@pytest.mark.parametrize("bad", ["/%E0%A4%A", "/%", "/%zz", "/exports/exp/%C0%AF", "/%ff"])
def test_bad_percent_encoding_is_400_and_the_server_keeps_serving(web_tools, folders, bad):
    with serving(folders) as base:
        status, body = get(base, bad)
        assert status == 400 and b"percent-encoding" in body
        assert get(base, "/exports/exp/plain.txt") == (200, b"plain\n")  # still serving
        assert get(base, "/index.html")[0] == 200


@pytest.mark.parametrize("path, status", [("/exports/exp/leak.txt", 404), ("/exports/exp/leakdir/secret.txt", 404),
                                          ("/exports/exp/shared.txt", 200), ("/exports/exp/plain.txt", 200),
                                          ("/exports/exp/../../outside/secret.txt", 404)])
def test_links_may_not_leave_the_served_folders(web_tools, folders, path, status):
    with serving(folders) as base:
        got, body = get(base, path)
        assert got == status, (path, body)
        assert b"not to be served" not in body


@pytest.mark.parametrize("args, says", [(["--host", "999.1.1.1"], "cannot listen on 999.1.1.1"),
                                        (["--port", "99999"], "--port wants a port number 0..65535"),
                                        (["--port", "abc"], "--port wants a port number"),
                                        (["--mount", "x=/nonexistent/folder"], "is not a folder")])
def test_bad_options_are_one_line_and_exit_2(web_tools, args, says):
    proc = subprocess.run([node_binary(), "tools/serve.js", "--port", "0", *args], cwd=WEB_DEMO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("serve: error: ") and says in proc.stderr, proc.stderr
