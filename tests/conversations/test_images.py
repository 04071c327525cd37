"""Checking and normalizing attached images, by their content alone."""

import io
import os

import pytest
from PIL import Image, ImageCms, ImageFile

from conversations import images
from conversations.images import ImageLimits, ImageRejected
from tests import image_files
from tests.image_files import BLUE, RED

LIMITS = ImageLimits()


def _normalize(data: bytes, filename: str = "picture.png", limits: ImageLimits = LIMITS):
    return images.normalize(io.BytesIO(data), filename=filename, limits=limits)


def _rejection(data: bytes, filename: str, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(ImageRejected) as rejected:
        _normalize(data, filename, limits)
    assert rejected.value.filename == filename
    message = str(rejected.value)
    assert f"“{filename}”" in message
    return message


def _close_to(pixel: tuple, colour: tuple) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP", "GIF"])
def test_it_accepts_png_jpeg_webp_and_gif(format):
    data = image_files.encoded(image_files.picture((120, 80)), format)
    normalized = _normalize(data, f"picture.{format.lower()}")
    assert (normalized.width, normalized.height) == (120, 80)
    stored = image_files.opened(normalized.data)
    assert stored.size == (120, 80)
    assert _close_to(stored.getpixel((10, 40)), RED)
    assert _close_to(stored.getpixel((110, 40)), BLUE)


def test_it_judges_by_content_not_by_name():
    normalized = _normalize(image_files.png(), "holiday.jpg.exe")
    assert normalized.content_type == "image/jpeg"
    assert normalized.original_name == "holiday.jpg.exe"


def test_it_takes_the_first_frame_of_an_animated_gif():
    frames = [Image.new("RGB", (60, 40), colour) for colour in (RED, BLUE, BLUE)]
    data = image_files.encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    stored = image_files.opened(_normalize(data, "animation.gif").data)
    assert _close_to(stored.getpixel((30, 20)), RED)


def test_it_rejects_a_text_file_renamed_png():
    message = _rejection(b"These are my notes, not a picture.\n" * 20, "notes.png")
    assert "is not a PNG, JPEG, WEBP or GIF image" in message


def test_it_rejects_an_svg():
    message = _rejection(image_files.SVG, "drawing.svg")
    assert "is not a PNG, JPEG, WEBP or GIF image" in message


def test_it_rejects_a_truncated_jpeg():
    message = _rejection(image_files.truncated_jpeg(), "photo.jpg")
    assert "damaged or incomplete" in message


def test_it_rejects_an_image_1_by_60000_pixels():
    message = _rejection(image_files.encoded(Image.new("L", (1, 60_000))), "strip.png")
    assert "1 \N{MULTIPLICATION SIGN} 60,000 pixels" in message
    assert "too long and thin" in message


def test_it_rejects_a_png_decompression_bomb_before_decoding_it(monkeypatch):
    def refuse_to_decode(image):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    data = image_files.png_decompression_bomb()
    assert len(data) < 100_000
    message = _rejection(data, "bomb.png")
    assert "8,000 \N{MULTIPLICATION SIGN} 8,000 pixels" in message
    assert "at most 40 megapixels" in message


def test_it_rejects_an_image_too_large_to_read_before_decoding_it(monkeypatch):
    def refuse_to_decode(image):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    data = image_files.png_that_passes_the_pixel_limit()
    assert len(data) < 10_000
    message = _rejection(data, "bomb.png")
    assert message == (
        "“bomb.png” is 6,300 \N{MULTIPLICATION SIGN} 6,300 pixels, which would take 286.5 MB "
        "of memory to read; the limit is 192 MB. Send a smaller image or a JPEG."
    )


def test_the_memory_limit_is_configurable():
    data = image_files.png((1000, 1000))
    assert "the limit is 20 MB. Send a smaller image" in _rejection(
        data, "a.png", ImageLimits(max_decoding_bytes=20 * images.MEGABYTE)
    )
    assert _normalize(data, limits=ImageLimits(max_decoding_bytes=40 * images.MEGABYTE))


def test_a_picture_of_noise_is_stored_as_a_jpeg():
    normalized = _normalize(image_files.noise_png((600, 400)))
    assert normalized.content_type == "image/jpeg"
    assert image_files.opened(normalized.data).size == (600, 400)


def test_it_rejects_an_empty_file():
    assert "is empty" in _rejection(b"", "empty.png")


def test_it_rejects_a_file_of_25_megabytes():
    message = _rejection(image_files.png_of_25_megabytes(), "huge.png")
    assert "the limit is 20 MB per image" in message


def test_its_limits_are_configurable():
    limits = ImageLimits(max_bytes=1000, max_pixels=2000, max_side=32)
    assert "the limit is 1 KB per image" in _rejection(
        image_files.noise_png((40, 40)), "a.png", limits
    )
    assert "at most 0.002 megapixels" in _rejection(image_files.png((50, 50)), "b.png", limits)
    normalized = _normalize(image_files.png((40, 20)), limits=limits)
    assert (normalized.width, normalized.height) == (32, 16)


def test_it_applies_the_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show it rotated 90° clockwise.
    data = image_files.encoded(image_files.picture((400, 200)), "JPEG", exif=exif)
    normalized = _normalize(data, "sideways.jpg")
    assert (normalized.width, normalized.height) == (200, 400)
    stored = image_files.opened(normalized.data)
    assert stored.size == (200, 400)
    assert _close_to(stored.getpixel((100, 50)), RED)
    assert _close_to(stored.getpixel((100, 350)), BLUE)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_photo_with_broken_exif_is_taken_as_stored():
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x01\x12"
    data = image_files.encoded(image_files.picture((40, 30)), "JPEG", exif=broken_exif)
    normalized = _normalize(data, "odd.jpg")
    assert (normalized.width, normalized.height) == (40, 30)


def test_it_drops_exif_gps_and_other_metadata():
    normalized = _normalize(image_files.phone_photo((800, 600)), "photo.jpg")
    stored = image_files.opened(normalized.data)
    assert not stored.getexif()
    assert stored.info.keys() <= {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
    for secret in (b"Exif", b"PhoneMaker", b"GPS", b"xmpmeta"):
        assert secret not in normalized.data
        assert secret not in normalized.thumbnail


def test_it_converts_colours_to_srgb_and_drops_the_profile():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = image_files.encoded(image_files.picture(), "PNG", icc_profile=profile)
    stored = image_files.opened(_normalize(data).data)
    assert "icc_profile" not in stored.info
    assert _close_to(stored.getpixel((10, 10)), RED)


def test_it_bounds_the_long_side():
    normalized = _normalize(image_files.png((3000, 1000)))
    assert (normalized.width, normalized.height) == (2048, 683)
    assert image_files.opened(normalized.data).size == (2048, 683)


def test_it_keeps_a_small_image_at_its_size():
    normalized = _normalize(image_files.png((64, 48)))
    assert (normalized.width, normalized.height) == (64, 48)


def test_it_keeps_transparency_as_png():
    image = image_files.picture((100, 100), mode="RGBA")
    image.putpixel((99, 99), (0, 0, 0, 0))
    normalized = _normalize(image_files.encoded(image))
    assert (normalized.content_type, normalized.extension) == ("image/png", "png")
    stored = image_files.opened(normalized.data)
    assert stored.mode == "RGBA"
    assert stored.getpixel((99, 99))[3] == 0
    assert stored.getpixel((10, 10))[3] == 255


def test_it_keeps_a_transparent_gif_transparent():
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, *RED])
    image.putpixel((0, 0), 0)
    data = image_files.encoded(image, "GIF", transparency=0)
    stored = image_files.opened(_normalize(data, "sticker.gif").data)
    assert stored.mode == "RGBA"
    assert stored.getpixel((0, 0))[3] == 0
    assert _close_to(stored.getpixel((20, 20)), RED)


def test_an_opaque_image_becomes_a_jpeg():
    opaque = image_files.picture(mode="RGBA")
    normalized = _normalize(image_files.encoded(opaque))
    assert (normalized.content_type, normalized.extension) == ("image/jpeg", "jpg")
    assert image_files.opened(normalized.data).format == "JPEG"


def test_a_transparent_png_too_large_for_the_upstream_becomes_a_webp(monkeypatch):
    monkeypatch.setattr(images, "UPSTREAM_MAX_IMAGE_BYTES", 1000)
    noise = Image.frombytes("RGBA", (200, 200), os.urandom(200 * 200 * 4))
    normalized = _normalize(image_files.encoded(noise))
    assert normalized.content_type == "image/webp"
    assert image_files.opened(normalized.data).mode == "RGBA"


def test_it_makes_a_small_webp_thumbnail():
    normalized = _normalize(image_files.png((1600, 1200)))
    thumbnail = image_files.opened(normalized.thumbnail)
    assert thumbnail.format == "WEBP"
    assert thumbnail.size == (images.THUMBNAIL_SIDE, 240)


def test_it_keeps_only_the_files_own_name():
    assert images.display_name("C:\\Users\\me\\Desktop\\cat.png") == "cat.png"
    assert images.display_name("../../etc/passwd") == "passwd"
    assert images.display_name("") == "image"
