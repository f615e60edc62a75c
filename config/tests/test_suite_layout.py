"""`make test` must run every app's tests: pytest only looks where testpaths says."""

import tomllib
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]


def test_every_project_app_with_tests_is_in_testpaths():
    testpaths = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"])
    project_apps = {
        Path(app.path).name for app in apps.get_app_configs() if Path(app.path).parent == ROOT
    }  # fmt: skip
    with_tests = {name for name in project_apps if (ROOT / name / "tests").is_dir()}

    assert with_tests <= testpaths, f"apps whose tests never run: {sorted(with_tests - testpaths)}"
    assert "config" in testpaths
