"""The walkthrough's demo apps, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import REPO
from proxy_support import free_port, request, wait_for_port

pytestmark = pytest.mark.timeout(60)


@contextmanager
def app(name: str, **env: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "apps" / name / "app.py")],
        env={**os.environ, "PORT": str(port), **env},
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_users_crud_stamped_with_the_version() -> None:
    with app("users", SERVICE_VERSION="v2") as port:
        created = request(
            port,
            "/api/users",
            method="POST",
            headers={"content-type": "application/json"},
            host="x",
        )
        assert created.status == 201
        assert json.loads(request(port, "/api/users/1").body) == {
            "id": 1,
            "username": "",
            "version": "v2",
        }
        assert request(port, "/api/users/9").status == 404
        assert request(port, "/api/users/1", method="DELETE").status == 200
        assert request(port, "/api/users/1").status == 404
        assert request(port, "/healthz").status == 200


def test_greeter_greets_errors_and_propagates_end_user() -> None:
    with app("users", SERVICE_VERSION="v1") as users:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", users, timeout=5)
        connection.request(
            "POST",
            "/api/users",
            body=b'{"username": "a"}',
            headers={"content-type": "application/json"},
        )
        assert connection.getresponse().status == 201
        with app(
            "greeter", SERVICE1_URL=f"http://127.0.0.1:{users}", HTTP_PROXY="", http_proxy=""
        ) as greeter:
            assert request(greeter, "/api/users/1").body == "Hello, a v1"
            assert request(greeter, "/api/users/2").body == "error"
            assert request(greeter, "/api/users/1", method="DELETE").body == "Bye, a v1"
            assert request(greeter, "/api/users/1").body == "error"
    with app("greeter", SERVICE1_URL=f"http://127.0.0.1:{free_port()}") as greeter:
        assert request(greeter, "/api/users/1").body == "error"
