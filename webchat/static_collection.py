"""Collecting static files at start (``serve --prepare``) only when they changed.

Collecting hashes every file and compresses it twice (gzip, and Brotli at its best and
slowest quality): seconds on a small server, on every start of ``make run``. The files
collectstatic would gather are listed with their sizes and modification times, with the
settings that shape the result; when that fingerprint matches the one saved by the last
collection, the collected files are current and the step is skipped.
"""

import hashlib
import os
from importlib import metadata
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command

# Beside the files it describes, so that emptying STATIC_ROOT forgets it too.
FINGERPRINT_NAME = ".collected-from"


def static_sources_fingerprint() -> str:
    """What collectstatic would collect, and how: each found file's path, size and time,
    the storage, and the packages that compress (Brotli's files come only with it)."""
    ignore_patterns = apps.get_app_config("staticfiles").ignore_patterns
    digest = hashlib.sha256()
    digest.update(f"{settings.STATIC_URL}\0{settings.STORAGES['staticfiles']}\n".encode())
    for package in ("servestatic", "brotli"):
        try:
            digest.update(f"{package} {metadata.version(package)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package} none\n".encode())
    found = []
    for finder in finders.get_finders():
        for path, storage in finder.list(ignore_patterns):
            stat = os.stat(storage.path(path))
            found.append(f"{path}\0{storage.location}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
    for line in sorted(found):
        digest.update(line.encode())
    return digest.hexdigest()


def static_files_collect_if_changed() -> bool:
    """Run collectstatic unless nothing changed since it last ran here; say whether it ran."""
    fingerprint_file = Path(settings.STATIC_ROOT) / FINGERPRINT_NAME
    fingerprint = static_sources_fingerprint()
    try:
        if fingerprint_file.read_text() == fingerprint:
            return False
    except OSError:  # never collected here, or emptied since
        pass
    fingerprint_file.unlink(missing_ok=True)  # a collection cut short is not current
    call_command("collectstatic", interactive=False, verbosity=0)
    fingerprint_file.write_text(fingerprint)
    return True
