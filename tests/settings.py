"""The product's settings, with a password hasher fast enough for tests.

PBKDF2's work factor makes each sign-in cost most of a second on a small machine; tests
that sign in dozens of times would then depend on how fast it is.
"""

from webchat.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
