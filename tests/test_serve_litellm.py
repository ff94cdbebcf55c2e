"""LiteLLM's proxy with its ``openai_moderation`` guardrail pointed at ``guardcli serve``: a
flagged request is blocked before it reaches the model, a benign one passes. The config is
the README's. Manual: it needs LiteLLM's proxy, which is no guardcli dependency, in a venv of
its own, found as ``$GUARDCLI_LITELLM`` or ``litellm`` on PATH; skipped without. Passed with
LiteLLM 1.110.2 (``pip install 'litellm[proxy]'``, or where the ``litellm-proxy`` package is not
available: litellm plus fastapi uvicorn uvloop gunicorn orjson apscheduler backoff
python-multipart cryptography pyjwt email-validator websockets redis semver expression
fastapi-sso mcp soundfile):

    GUARDCLI_LITELLM=/tmp/litellm-venv/bin/litellm pytest tests/test_serve_litellm.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import httpx
import pytest

from tests.cli_support import PAIRS
from tests.serve_support import free_port, start

pytestmark = pytest.mark.slow

CONFIG = """\
model_list:
  - model_name: app-model
    litellm_params:
      model: openai/app-model
      api_base: http://127.0.0.1:9/v1
      api_key: unused
      mock_response: "A fine answer."
guardrails:
  - guardrail_name: guardcli
    litellm_params:
      guardrail: openai_moderation
      mode: pre_call
      default_on: true
      api_base: {guard}/v1
      api_key: unused-on-loopback
general_settings:
  master_key: sk-test
"""


def test_litellm_blocks_what_guardcli_flags(fixture_bundle, tmp_path):
    litellm = os.environ.get("GUARDCLI_LITELLM") or shutil.which("litellm")
    if not litellm:
        pytest.skip("LiteLLM's proxy is not installed (set GUARDCLI_LITELLM)")
    server = start(fixture_bundle, tmp_path)
    port = free_port()
    config = tmp_path / "litellm.yaml"
    config.write_text(CONFIG.format(guard=server.url))
    log = (tmp_path / "litellm.log").open("wb")
    proxy = subprocess.Popen(
        [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proxy.poll() is not None:
                pytest.fail((tmp_path / "litellm.log").read_text())
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail((tmp_path / "litellm.log").read_text())

        def chat(text: str) -> httpx.Response:
            body = {"model": "app-model", "messages": [{"role": "user", "content": text}]}
            auth = {"Authorization": "Bearer sk-test"}
            return httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=120)

        blocked = chat(PAIRS["fake-id"].prompt)
        assert blocked.status_code == 400, blocked.text
        assert "moderation" in blocked.text.lower()
        passed = chat(PAIRS["puppy-name"].prompt)
        assert passed.status_code == 200, passed.text
        assert passed.json()["choices"][0]["message"]["content"] == "A fine answer."
        assert "POST /v1/moderations 200" in server.stderr()
    finally:
        proxy.terminate()
        proxy.wait(30)
        assert server.stop() == 0
