"""The benchmark runs end to end, in miniature, so that it does not rot.

Its figures are not checked here (they need a quiet machine and minutes): only that every
stage ran, each reply arrived through the websocket, and the results were written.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_a_few_conversations_and_writes_its_results(tmp_path):
    # The embedded set-up only, whatever database and Redis this suite runs on.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "STATIC_ROOT"}
    }
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", f"--out={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "| End-to-end added TTFT, one user, socket" in result.stdout
    assert "| End-to-end added TTFT, one user, Chromium" in result.stdout
    assert "| End-to-end added TTFT, one user, API stream" in result.stdout
    [written] = tmp_path.glob("*-embedded.json")
    figures = json.loads(written.read_text())
    for scenario in ("one_user", "spread", "burst"):
        ran = figures["ttft"][scenario]
        assert ran["errors"] == ran["direct_errors"] == 0, ran["error_examples"]
        assert ran["webchat_added_ms"]["count"] == ran["conversations"]
        assert ran["e2e_added_ms"]["count"] == ran["conversations"]
        assert ran["phases_ms"]["upstream_asked"]["count"] == ran["conversations"]
    assert figures["ttft"]["one_user"]["cpu_per_send_ms"]["count"] > 0
    api = figures["api"]["one_user"]
    assert api["errors"] == api["direct_errors"] == 0, api["error_examples"]
    assert api["e2e_added_ms"]["count"] == api["conversations"]
    assert figures["chromium"]["errors"] == 0, figures["chromium"]["error_examples"]
    assert figures["chromium"]["e2e_added_ms"]["count"] == figures["chromium"]["sends"]
    for scenario in ("one_user", "at_once"):
        ran = figures["markdown"][scenario]
        assert ran["errors"] == 0, ran["error_examples"]
        assert ran["e2e_added_ms"]["count"] == ran["conversations"]
    assert figures["concurrency"]["steps"][0]["errors"] == 0
    assert figures["page"]["requests"] >= 3
    assert figures["memory"]["with_sockets_mb"][0] > 0
    assert figures["start"]["seconds"] > 0
    assert {target["figure"] for target in figures["targets"]} >= {"start.seconds"}
