"""``serve --prepare`` collects static files only when what it would collect changed."""

import os
import time

import pytest

from webchat import static_collection
from webchat.static_collection import FINGERPRINT_NAME, static_files_collect_if_changed

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(settings, tmp_path):
    """A static folder of the project's own, collected into an empty STATIC_ROOT."""
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "site.css").write_text("body { margin: 0 }")
    settings.STATICFILES_DIRS = [folder]
    settings.STATIC_ROOT = tmp_path / "collected"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    return folder


def _edited(path, text: str) -> None:
    """``text`` written to ``path`` later than its collection (collectstatic copies only
    files newer than their copy, to the second)."""
    path.write_text(text)
    later = time.time() + 10
    os.utime(path, (later, later))


@pytest.fixture
def collections(monkeypatch):
    """The collectstatic runs, counted (each still runs)."""
    runs = []
    call_command = static_collection.call_command

    def counted(*args, **options):
        runs.append(args)
        return call_command(*args, **options)

    monkeypatch.setattr(static_collection, "call_command", counted)
    return runs


def test_the_first_start_collects_and_the_next_one_finds_nothing_to_do(
    source, settings, collections
):
    assert static_files_collect_if_changed()
    assert (settings.STATIC_ROOT / "staticfiles.json").exists()

    assert not static_files_collect_if_changed()
    assert len(collections) == 1


def test_a_changed_file_is_collected_again(source, settings, collections):
    static_files_collect_if_changed()
    _edited(source / "site.css", "body { margin: 0; color: #222 }")

    assert static_files_collect_if_changed()
    manifest = (settings.STATIC_ROOT / "staticfiles.json").read_text()
    collected = settings.STATIC_ROOT / "site.css"
    assert collected.read_text() == "body { margin: 0; color: #222 }"
    assert len(collections) == 2
    assert '"site.css"' in manifest


def test_a_new_file_or_another_storage_is_collected_again(source, settings, collections):
    static_files_collect_if_changed()
    (source / "extra.js").write_text("console.log(1)")
    assert static_files_collect_if_changed()

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    assert static_files_collect_if_changed()
    assert len(collections) == 3


def test_an_emptied_static_root_is_filled_again(source, settings, collections):
    static_files_collect_if_changed()
    for path in sorted(settings.STATIC_ROOT.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()

    assert static_files_collect_if_changed()
    assert (settings.STATIC_ROOT / "site.css").exists()


def test_a_collection_cut_short_is_done_again_at_the_next_start(source, settings, monkeypatch):
    static_files_collect_if_changed()
    _edited(source / "site.css", "body { margin: 1px }")

    def cut_short(*args, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(static_collection, "call_command", cut_short)
    with pytest.raises(KeyboardInterrupt):
        static_files_collect_if_changed()
    assert not (settings.STATIC_ROOT / FINGERPRINT_NAME).exists()

    monkeypatch.undo()
    assert static_files_collect_if_changed()
    assert (settings.STATIC_ROOT / "site.css").read_text() == "body { margin: 1px }"
