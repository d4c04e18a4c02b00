"""A body over the limit gets its 413, even from a client that writes the whole body first.

Python's urllib and many HTTP/1.1 clients send the entire request before reading anything.
A server that answers early and closes with the body still unread makes the kernel reset the
connection, and such a client sees ``ConnectionResetError`` instead of the answer. Both
servers are real processes here (``groupwire serve`` and ``groupwire medusa gateway``, each
under uvicorn on a free port of 127.0.0.1), and both clients write everything, then read.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import PLUGIN, Invoke, cli_process, free_port, json_lines, stop

LIMIT = 1024 * 1024
BODY = json.dumps({"name": "x" * (4 * LIMIT)}).encode()
STARTUP_SECONDS = 40


def wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log.with_suffix(".err").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port} within {STARTUP_SECONDS} s")


def post_with_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """urllib writes the request line, headers and the whole body before reading."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_chunked_then_read(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A raw socket: the whole chunked request is sent (no Content-Length, so the limit is
    found while the body streams in), then the answer is read to the end."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
        for i in range(0, len(body), 65536)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n{head}\r\n".encode()
            + chunks
            + b"0\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.fixture
def served(cli: Invoke, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``groupwire serve`` with a 1 MiB body limit: its port and an admin key's header."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    created = cli("keys", "create", "limits", "--scope", "write", "--json", "--db", url)
    assert created.exit_code == 0, created.output
    [key] = json_lines(created.stdout)
    port = free_port()
    log = tmp_path / "serve.out"
    process = cli_process(
        "serve",
        "--port",
        str(port),
        "--db",
        url,
        log=log,
        env={"GROUPWIRE_API_MAX_BODY_BYTES": str(LIMIT)},
    )
    try:
        wait_for_port(process, port, log)
        yield port, {"Authorization": f"Bearer {key['secret']}"}
    finally:
        stop(process)


def test_given_a_declared_body_over_the_limit_then_a_whole_body_first_client_reads_the_413(
    served: tuple[int, dict[str, str]],
) -> None:
    port, auth = served

    status, body = post_with_urllib(
        f"http://127.0.0.1:{port}/admin/customer-groups",
        BODY,
        {**auth, "Content-Type": "application/json"},
    )

    assert (status, body["type"]) == (413, "invalid_data"), body
    assert body["message"] == f"Request body is larger than the limit of {LIMIT:,} bytes"


def test_given_a_chunked_body_over_the_limit_then_a_whole_body_first_client_reads_the_413(
    served: tuple[int, dict[str, str]],
) -> None:
    port, auth = served

    answer = post_chunked_then_read(port, "/admin/customer-groups", BODY, auth)

    status, body = status_and_json(answer)
    assert (status, body["type"]) == (413, "invalid_data"), body


def test_given_a_body_without_credentials_then_the_401_arrives_too(
    served: tuple[int, dict[str, str]],
) -> None:
    """Any answer given before the body is read (here authentication's) reads the rest of the
    body first: one under the limit but larger than what uvicorn and the kernel buffer."""
    port, _ = served
    small = json.dumps({"name": "y" * (LIMIT - 1024)}).encode()

    status, body = post_with_urllib(
        f"http://127.0.0.1:{port}/admin/customer-groups",
        small,
        {"Content-Type": "application/json"},
    )

    assert (status, body["type"]) == (401, "unauthorized"), body


def test_given_the_gateway_and_a_write_body_over_its_limit_then_the_client_reads_the_413(
    tmp_path: Path,
) -> None:
    """The gateway reads a hooked write whole for the hooks: over ``--max-body`` it answers
    413 itself, before Medusa is involved (the upstream here has no server at all)."""
    port = free_port()
    log = tmp_path / "gateway.out"
    process = cli_process(
        "medusa",
        "gateway",
        "--upstream",
        f"http://127.0.0.1:{free_port()}",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp_path / 'copy.db'}",
        "--plugin",
        PLUGIN,  # a before_add_customer_to_group hook: the membership write is read
        "--max-body",
        str(LIMIT),
        "--log-level",
        "warning",
        log=log,
    )
    try:
        wait_for_port(process, port, log)
        body = json.dumps({"add": ["cus_" + "x" * 30] * (4 * LIMIT // 36)}).encode()

        status, answer = post_with_urllib(
            f"http://127.0.0.1:{port}/admin/customer-groups/cusgroup_1/customers",
            body,
            {"Content-Type": "application/json", "Authorization": "Bearer anything"},
        )

        assert (status, answer["type"]) == (413, "invalid_data"), answer
    finally:
        stop(process)
