"""Loaded as a pytest plugin (see pyproject.toml) before Django reads its settings."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
