"""The installed app stands on its runtime dependencies alone: none of its modules imports
test code (the fake upstream) or uvicorn, which only the test and bench extras install."""

import json
import os
import subprocess
import sys
import tomllib

from tests.live_server import ROOT

# Imports every module of the packages named on the command line, then lists sys.modules.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import django

django.setup()
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for found in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(found.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_no_installed_module_imports_test_code_or_uvicorn():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [pattern.removesuffix("*") for pattern in included]

    # A fresh interpreter: this one has the fake upstream and uvicorn loaded already.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, *packages],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "webchat.settings"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert {"conversations.upstream.demo", "webchat.asgi"} <= set(imported)
    assert [name for name in imported if name.split(".")[0] in {"tests", "uvicorn"}] == []
