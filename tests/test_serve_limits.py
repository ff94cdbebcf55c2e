"""``guardcli serve`` under load, bad clients and shutdown: API keys, the bounded queue
(429), the deadline (504, work cancelled), the SIGTERM drain, and the missing extra."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.cli_support import PAIRS, REPO, WITH_RESPONSE
from tests.serve_support import start

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789"
PROMPT = PAIRS["fake-id"].prompt


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-limits")


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_an_api_key_guards_every_route_but_the_probes(fixture_bundle, home):
    from openai import AuthenticationError, OpenAI

    server = start(fixture_bundle, home, "--log-requests", env={"GUARDCLI_API_KEY": KEY})
    try:
        url = server.url
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            for method, path in (
                ("POST", "/v1/moderations"),
                ("POST", "/v1/guard"),
                ("GET", "/metrics"),
                ("GET", "/nope"),
            ):
                answer = httpx.request(method, f"{url}{path}", json={"input": "x"}, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.json()["error"]["code"] == "invalid_api_key"
                assert answer.headers["www-authenticate"] == "Bearer"
        v1 = f"{url}/v1"
        auth = {"Authorization": f"Bearer {KEY}"}
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=v1, api_key="wrong", max_retries=0).moderations.create(input="x")
        good = OpenAI(base_url=v1, api_key=KEY, max_retries=0).moderations.create(input=PROMPT)
        assert good.results[0].flagged is True
        hostile = "line one\nforged line \x1b[2J"
        assert httpx.post(f"{v1}/guard", json={"prompt": hostile}, headers=auth).status_code == 200
    finally:
        assert server.stop() == 0
    log = server.stderr()
    assert KEY not in log
    assert f'"prompt": "{PROMPT}"' in log  # --log-requests: the text, as JSON
    assert "line one\\nforged line \\u001b[2J" in log and "\x1b" not in log


def test_an_open_bind_without_a_key_is_refused_before_loading(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "guardcli", "serve", "--host", "0.0.0.0", "-m", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "no API key is set" in result.stderr and "GUARDCLI_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_fails_at_once_before_loading(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "guardcli", "serve", "--port", str(port), "-m", str(tmp_path)],
            capture_output=True, text=True, cwd=REPO, timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_without_the_serve_extra_one_line_names_the_install(tmp_path):
    code = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['guardcli'] + sys.argv[1:];"
        "from guardcli.cli import main; main()"
    )
    run = [sys.executable, "-c", code]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    helps = subprocess.run([*run, "--help"], capture_output=True, text=True, cwd=REPO, env=env)
    assert helps.returncode == 0 and "serve" in helps.stdout
    result = subprocess.run([*run, "serve"], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "guardcli: error: guardcli serve needs the serve extra (uvicorn is not installed) - "
        "pip install 'guardcli[serve]'"
    ]


def test_a_full_queue_answers_429_with_retry_after(fixture_bundle, home):
    server = start(
        fixture_bundle,
        home,
        "--batch-size",
        "1",
        "--max-queue",
        "2",
        "--max-inputs",
        "2",
        "--wait-ms",
        "0",
    )
    try:
        url = f"{server.url}/v1/moderations"

        async def main():
            async with httpx.AsyncClient(timeout=60) as http:
                body = {"input": [PROMPT, PROMPT]}
                return await asyncio.gather(*(http.post(url, json=body) for _ in range(8)))

        answers = asyncio.run(main())
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses[0] == 200 and statuses[-1] == 429 and set(statuses) == {200, 429}
        for answer in answers:
            if answer.status_code == 200:
                assert len(answer.json()["results"]) == 2
                continue
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.json()["error"]["type"] == "rate_limit_error"
            assert answer.json()["error"]["code"] == "queue_full"
    finally:
        assert server.stop() == 0


def test_a_deadline_answers_504_and_cancels_the_work(fixture_bundle, home):
    server = start(fixture_bundle, home, "--timeout", "0.02", "--wait-ms", "0")
    # 8 pairs with responses, one batch: longer than 20 ms on any CPU
    inputs = [{"prompt": p.prompt, "response": p.response} for p in WITH_RESPONSE] * 2
    try:
        began = time.monotonic()
        answer = httpx.post(f"{server.url}/v1/guard", json={"inputs": inputs}, timeout=60)
        assert time.monotonic() - began < 2
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "timeout"
        for _ in range(100):
            if metric(server.url, "guardcli_cancelled_batches_total") == 1:
                break
            time.sleep(0.02)
        assert metric(server.url, "guardcli_cancelled_batches_total") == 1
        assert metric(server.url, "guardcli_inputs_judged_total") == 0
        # A stream that times out after its 200 ends with an error event.
        body = {"inputs": inputs, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/guard", json=body, timeout=60) as stream:
            text = stream.read().decode()
        assert "event: error" in text and '"code": "timeout"' in text
    finally:
        assert server.stop() == 0


def test_sigterm_drains_in_flight_refuses_new_and_exits_0(fixture_bundle, home):
    server = start(
        fixture_bundle, home, "--batch-size", "1", "--max-inputs", "32", "--max-queue", "32"
    )
    # 32 pairs with responses, one at a time: in flight for well over a second
    inputs = [{"prompt": p.prompt, "response": p.response} for p in WITH_RESPONSE] * 8

    async def main():
        async with httpx.AsyncClient(timeout=60) as http:
            body = {"inputs": inputs}
            in_flight = asyncio.create_task(http.post(f"{server.url}/v1/guard", json=body))
            for _ in range(200):
                if metric(server.url, "guardcli_inputs_judged_total") >= 1:
                    break
                await asyncio.sleep(0.01)
            server.proc.terminate()
            await asyncio.sleep(0.1)
            late = await http.post(f"{server.url}/v1/moderations", json={"input": PROMPT})
            ready = await http.get(f"{server.url}/readyz")
            return await in_flight, late, ready

    try:
        done, late, ready = asyncio.run(main())
    finally:
        code = server.stop()
    assert done.status_code == 200 and len(done.json()["results"]) == len(inputs)
    assert late.status_code == 503 and late.json()["error"]["code"] == "draining"
    assert ready.status_code == 503
    assert code == 0, server.stderr()
    assert "SIGTERM: draining 1 request(s)" in server.stderr()
