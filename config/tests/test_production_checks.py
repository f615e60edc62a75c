"""Production refuses unsafe settings (issue 17, finding 7).

An outside tester set docs/operations.md's production variables but left the callback
secrets unset: callbacks signed with the repository's defaults passed, the sandbox
retailer's API answered, and `check --deploy` said nothing. Each unsafe setting is now a
system check error naming the variable, and the web server refuses to start.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from config.tests import rawhttp
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

# docs/operations.md, "Environment": what production sets.
PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/livemart_never_used",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "REDIS_PREFIX": "prodcheck",
    "SECRET_KEY": "k3y-" + "x7Qp9vR2mT5wZ8yB4nC6dF1gH3jK0lL" * 2,
    "ALLOWED_HOSTS": "shop.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://shop.example.com",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "BEHIND_PROXY": "1",
    "SERVE_MEDIA": "0",
    "MEDIA_HOOK_SECRET": "media-hook-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "RETAILER_BACKEND": "http",
    "RETAILER_API_URL": "https://partner.retailer.example/api/",
    "RETAILER_API_KEY": "livemart",
    "RETAILER_API_SECRET": "retailer-5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d",
    "PAYMENT_CALLBACK_SECRET": "payment-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d",
    "ALLOW_SANDBOX_PAYMENTS": "1",
    "SILENCED_SYSTEM_CHECKS": "security.W005,security.W021",
}
SECRETS = ("PAYMENT_CALLBACK_SECRET", "RETAILER_API_SECRET", "MEDIA_HOOK_SECRET")


def environment(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION and not k.startswith(("DJANGO_", "ALLOW_"))}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", QUIET_EMBEDDED="1")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args, **changes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment(**changes),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_production_variables_pass_check_deploy_with_no_warning():
    result = manage("check", "--deploy")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (2 silenced)." in result.stdout


def test_callback_secrets_left_unset_stop_the_checks_naming_each_variable():
    result = manage("check", **dict.fromkeys(SECRETS))
    assert result.returncode != 0
    for name in SECRETS:
        assert name in result.stderr
    assert "ERROR" in result.stderr


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY"),
        ({"PAYMENT_CALLBACK_SECRET": "sandbox-payment-secret"}, "PAYMENT_CALLBACK_SECRET"),
        ({"RETAILER_API_SECRET": "sandbox-retailer-secret"}, "RETAILER_API_SECRET"),
        ({"RETAILER_CALLBACK_SECRET": "sandbox-retailer-secret"}, "RETAILER_CALLBACK_SECRET"),
        ({"MEDIA_HOOK_SECRET": ""}, "MEDIA_HOOK_SECRET"),
        ({"ALLOW_SANDBOX_PAYMENTS": None}, "ALLOW_SANDBOX_PAYMENTS"),
        ({"RETAILER_BACKEND": "inprocess"}, "ALLOW_SANDBOX_RETAILER"),
        ({"ALLOWED_HOSTS": "shop.example.com,*"}, "ALLOWED_HOSTS"),
    ],
    ids=["secret-key", "payment-secret", "retailer-secret", "retailer-callback-secret", "media-secret",
         "sandbox-payments", "sandbox-retailer", "any-host"],
)  # fmt: skip
def test_each_unsafe_setting_is_an_error_naming_its_variable(changes, named):
    result = manage("check", **changes)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "livemart.E" in line]
    assert len(errors) == 1 and named in errors[0], result.stderr


def test_the_sandbox_retailer_is_fine_with_its_explicit_opt_in():
    assert manage("check", RETAILER_BACKEND="inprocess", ALLOW_SANDBOX_RETAILER="1").returncode == 0


def test_debug_and_the_embedded_default_are_not_production(tmp_path):
    assert manage("check", DEBUG="1", **dict.fromkeys(SECRETS)).returncode == 0
    sqlite = str(tmp_path / "embedded.sqlite3")
    embedded = manage("check", DATABASE_URL=None, REDIS_URL=None, SQLITE_PATH=sqlite, **dict.fromkeys(SECRETS))
    assert embedded.returncode == 0, embedded.stderr


def test_the_web_server_refuses_to_start_with_an_unsafe_setting():
    log = ROOT / "var" / f"prodcheck-{os.getpid()}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(free_port())],
            cwd=ROOT, env=environment(PAYMENT_CALLBACK_SECRET=None), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("uvicorn started with the published payment secret")
    assert code != 0
    assert "PAYMENT_CALLBACK_SECRET" in log.read_text()


@pytest.mark.django_db
def test_the_sandbox_retailer_api_does_not_answer_without_its_opt_in(settings):
    settings.SANDBOX_RETAILER_API = False
    stamp = str(int(time.time())).encode()
    status, _ = async_to_sync(rawhttp.request)(
        "/retailer-api/v1/catalog/categories", body=b"{}",
        headers=[(b"x-retailer-key", b"live-partner"), (b"x-retailer-timestamp", stamp)],
    )  # fmt: skip
    assert status == 404
