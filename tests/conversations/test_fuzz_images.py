"""Property-based tests of the image validator: whatever bytes arrive, it either returns a
normalized image that opens, or refuses the file; it never crashes otherwise."""

import functools
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conversations.images import ImageLimits, ImageRejected, normalize
from tests.image_files import encoded, picture

# A mutated header may claim more pixels than Pillow's own bomb threshold; Pillow then warns
# (a RuntimeWarning, an error under this suite's settings) before the validator refuses it.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=1_000_000, max_side=256)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def valid_images() -> dict[str, bytes]:
    """One small image of each accepted format, with an alpha channel where it can have one."""
    rgba = picture((48, 32), "RGBA")
    return {
        "PNG": encoded(rgba, "PNG"),
        "JPEG": encoded(picture((48, 32)), "JPEG", quality=80),
        "GIF": encoded(picture((48, 32)).convert("P"), "GIF"),
        "WEBP": encoded(rgba, "WEBP", quality=80),
    }


def _normalized_or_refused(data: bytes) -> None:
    try:
        image = normalize(io.BytesIO(data), filename="fuzz.bin", limits=LIMITS)
    except ImageRejected:
        return
    with Image.open(io.BytesIO(image.data)) as stored:
        stored.load()
        assert stored.size == (image.width, image.height)
    with Image.open(io.BytesIO(image.thumbnail)) as thumbnail:
        thumbnail.load()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_refused_never_crash(data):
    try:
        normalize(io.BytesIO(data), filename="random.png", limits=LIMITS)
    except ImageRejected:
        return
    raise AssertionError(f"accepted {len(data)} random bytes as an image")


@FUZZ
@given(st.sampled_from(sorted(valid_images())), st.data())
def test_truncated_images_are_normalized_or_refused(image_format, data):
    original = valid_images()[image_format]
    length = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="length")
    _normalized_or_refused(original[:length])


@FUZZ
@given(st.sampled_from(sorted(valid_images())), st.data())
def test_bit_flipped_images_are_normalized_or_refused(image_format, data):
    mutated = bytearray(valid_images()[image_format])
    positions = st.integers(min_value=0, max_value=len(mutated) - 1)
    for position in data.draw(st.lists(positions, min_size=1, max_size=8), label="positions"):
        mutated[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    _normalized_or_refused(bytes(mutated))


@FUZZ
@given(st.sampled_from(sorted(valid_images())), st.binary(min_size=1, max_size=64), st.data())
def test_images_with_spliced_in_garbage_are_normalized_or_refused(image_format, garbage, data):
    original = valid_images()[image_format]
    start = data.draw(st.integers(min_value=0, max_value=len(original)), label="start")
    _normalized_or_refused(original[:start] + garbage + original[start + len(garbage) :])
