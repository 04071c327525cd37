"""Image files made with Pillow for the tests: no binary fixtures."""

import functools
import io
import os

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image, ImageDraw

RED = (220, 30, 30)
BLUE = (30, 60, 220)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
    b'<rect width="40" height="40" fill="red"/></svg>'
)


def encoded(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def picture(size: tuple[int, int] = (120, 80), mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: which way up it is can be told from its pixels."""
    image = Image.new(mode, size, BLUE)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1] - 1), fill=RED)
    return image


def png(size: tuple[int, int] = (120, 80)) -> bytes:
    return encoded(picture(size))


def phone_photo(size: tuple[int, int] = (4032, 3024)) -> bytes:
    """A JPEG as a phone takes it: sideways, with orientation 6, camera and GPS details."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (37.0, 33.0, 59.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (126.0, 58.0, 40.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>37,33N</exif:GPSLatitude>'
    xmp += b"</x:xmpmeta>"
    return encoded(picture(size), "JPEG", quality=90, exif=exif, xmp=xmp, comment=b"PhoneMaker")


def noise_png(size: tuple[int, int]) -> bytes:
    """Random pixels barely compress: a PNG of about ``width * height * 3`` bytes."""
    width, height = size
    image = Image.frombytes("RGB", size, os.urandom(width * height * 3))
    return encoded(image, compress_level=1)


@functools.cache
def png_of_25_megabytes() -> bytes:
    data = noise_png((3000, 3000))
    assert len(data) > 25 * 1024 * 1024
    return data


def png_decompression_bomb() -> bytes:
    """64 megapixels in a few kilobytes: small to send, enormous to decode."""
    return encoded(Image.new("1", (8000, 8000)), optimize=True)


def png_that_passes_the_pixel_limit() -> bytes:
    """A 5 KB PNG of 6300 x 6300 one-bit pixels: under 40 megapixels, 250 MB to read."""
    return encoded(Image.new("1", (6300, 6300)), optimize=True)


def truncated_jpeg() -> bytes:
    data = encoded(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG")
    return data[: len(data) // 2]


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
