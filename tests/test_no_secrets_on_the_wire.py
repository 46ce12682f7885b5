"""No credential leaves the machine: the bytes a plan request puts on the wire are captured by a raw
socket server on loopback (which then answers 500, so the local stack answers too) and searched for
every secret the process could see: environment keys, a session token, a shared credentials file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

from conftest import ROOT

SECRETS = {"AWS_ACCESS_KEY_ID": "AKIAQSECRETKEYID0001", "AWS_SECRET_ACCESS_KEY": "s3cr3t/VALUE+that+must+not+leak0000",
           "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEJr//////////wEaDSESSIONTOKENVALUE"}
FILE_SECRET = "fileSecretAccessKeyThatMustNotLeak1111"


def _read_request(conn: socket.socket) -> bytes:
    """Headers, then exactly content-length bytes of body: the whole request as sent."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def capture_server() -> tuple[int, list[bytes], threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    seen: list[bytes] = []

    def serve():
        sock.settimeout(120)
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            seen.append(_read_request(conn))
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}")
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock.getsockname()[1], seen, thread


def test_a_plan_request_carries_no_credential(tmp_path, seed_resource):
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = AKIAFILEKEY000000001\naws_secret_access_key = {FILE_SECRET}\n")
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps([seed_resource]))
    port, seen, thread = capture_server()
    env = {**os.environ, **SECRETS, "AWS_SHARED_CREDENTIALS_FILE": str(creds), "CLOUDOPS_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "app.interfaces.cli", "plan", "Stop pg-instance-main1", "--json", "--resources",
                          str(resources), "--server", f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    thread.join(timeout=10)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["served_by"] == "local"  # the server answered 500
    assert seen and b"POST /v1/plan" in seen[0] and b"pg-instance-main1" in seen[0]
    wire = seen[0]
    for secret in [*SECRETS.values(), FILE_SECRET, "AKIAFILEKEY000000001"]:
        assert secret.encode() not in wire, f"{secret[:6]}... was sent"
    # nor does any file the run left under CLOUDOPS_HOME hold one
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in [*SECRETS.values(), FILE_SECRET]), path
