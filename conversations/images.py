"""Checking and normalizing images that users attach to messages.

Pure functions over file objects (Pillow; of Django only its translations, for refusals): an
image is accepted by its content, never by its name or the browser's content type. A
normalized image is upright, bounded in size, re-encoded without any of the original's
metadata (EXIF, GPS, XMP, comments), in sRGB, and comes with a small thumbnail for the page.
Anything else raises ``ImageRejected``.
"""

import io
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from django.utils.translation import gettext
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# Longest side over shortest side; beyond this an image is a line, not a picture.
MAX_ASPECT_RATIO = 20
THUMBNAIL_SIDE = 320
THUMBNAIL_CONTENT_TYPE = "image/webp"
# What the upstream accepts for one image; a larger PNG is re-encoded as WEBP.
UPSTREAM_MAX_IMAGE_BYTES = 10 * 1024 * 1024
JPEG_QUALITY = 88
WEBP_QUALITY = 88
THUMBNAIL_QUALITY = 80
MEGABYTE = 1024 * 1024
DECODING_SLACK = 16 * MEGABYTE

# EXIF orientation -> the transposition that makes the picture upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises on damaged or truncated data while reading an image.
_DECODING_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
)
_SRGB = ImageCms.createProfile("sRGB")


class ImageRejected(Exception):
    """An attached file that is refused; ``str(error)`` names the file and says why."""

    def __init__(self, filename: str, message: str, **values: object) -> None:
        """``message`` says why, with ``%(name)s`` where the file's name goes."""
        super().__init__(message % {"name": filename, **values})
        self.filename = filename


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * MEGABYTE
    max_pixels: int = 40_000_000
    max_side: int = 2048
    # The memory normalizing one image may take (``decoding_bytes``).
    max_decoding_bytes: int = 192 * MEGABYTE


@dataclass(frozen=True)
class NormalizedImage:
    original_name: str
    content_type: str
    extension: str
    data: bytes
    width: int
    height: int
    thumbnail: bytes


def normalize(file: BinaryIO, *, filename: str, limits: ImageLimits) -> NormalizedImage:
    """Check the image in ``file`` and return it normalized, or raise ``ImageRejected``.

    Only the header is read before the size, pixel and memory checks, so a decompression
    bomb is refused without being decoded; the picture is decoded once, and JPEGs at a
    reduced scale when they are much larger than needed.
    """
    name = display_name(filename)
    _check_file_size(file, name, limits)
    try:
        with Image.open(file, formats=ACCEPTED_FORMATS) as source:
            _check_dimensions(source.size, name, limits)
            source.draft(None, _fitted(source.size, limits.max_side))
            _check_decoding_bytes(source, name, limits)
            source_format = source.format
            # Only now: Pillow decodes a whole PNG to look for EXIF after its pixels.
            orientation = _orientation(source)
            icc_profile = source.info.get("icc_profile")
            source.load()
            image = _resized(_rgb_or_rgba(source), limits.max_side)
            image = _upright(_srgb(image, icc_profile), orientation)
    except UnidentifiedImageError:
        raise ImageRejected(
            name, gettext("“%(name)s” is not a PNG, JPEG, WEBP or GIF image.")
        ) from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            name,
            gettext("“%(name)s” images may have at most %(megapixels)s megapixels."),
            megapixels=_megapixels(limits),
        ) from None
    except _DECODING_ERRORS:
        raise ImageRejected(
            name, gettext("“%(name)s” is damaged or incomplete and cannot be read.")
        ) from None
    # Nothing of the original's metadata may reach the output (Pillow's encoders read some
    # of it, such as ICC profiles and comments, from ``info``).
    image.info = {}
    content_type, extension, data = _encoded(image, lossless_source=source_format != "JPEG")
    return NormalizedImage(
        original_name=name,
        content_type=content_type,
        extension=extension,
        data=data,
        width=image.width,
        height=image.height,
        thumbnail=_thumbnail(image),
    )


def display_name(filename: str) -> str:
    """The file's own name, without any folder a client may have sent, kept short."""
    name = os.path.basename(filename.replace("\\", "/")).strip()
    return (name or "image")[:200]


def file_size(size: int) -> str:
    """``size`` bytes for people: "25.2 MB", "20 MB", "350 KB"."""
    if size >= MEGABYTE:
        return f"{size / MEGABYTE:.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(size / 1024))} KB"


def _check_file_size(file: BinaryIO, name: str, limits: ImageLimits) -> None:
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if size == 0:
        raise ImageRejected(name, gettext("“%(name)s” is empty."))
    if size > limits.max_bytes:
        raise ImageRejected(
            name,
            gettext("“%(name)s” is %(size)s; the limit is %(limit)s per image."),
            size=file_size(size),
            limit=file_size(limits.max_bytes),
        )


def _check_dimensions(size: tuple[int, int], name: str, limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            name,
            gettext(
                "“%(name)s” is %(dimensions)s pixels; "
                "images may have at most %(megapixels)s megapixels."
            ),
            dimensions=_dimensions(size),
            megapixels=_megapixels(limits),
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageRejected(
            name,
            gettext(
                "“%(name)s” is %(dimensions)s pixels, too long and thin to show the model; "
                "the long side may be at most %(ratio)s times the short side."
            ),
            dimensions=_dimensions(size),
            ratio=MAX_ASPECT_RATIO,
        )


def decoding_bytes(image: Image.Image, max_side: int) -> int:
    """The most memory ``normalize`` takes for ``image``, opened but not yet decoded, judged
    from its header alone.

    A small file can hold a huge picture (a 5 KB PNG of 6300 by 6300 one-bit pixels), and its
    cost is what its pixels take once decoded at the bytes per pixel Pillow stores for its
    mode, then again converted to RGB or RGBA; transparency adds the alpha channel and the
    premultiplied copy Pillow resizes; libwebp keeps two canvases of its own and hands
    Pillow a copy; resizing makes an intermediate image as wide as the result and as tall as
    the original. What is made from the result (colours, orientation, the thumbnail, the
    encoders' buffers) is counted at twice its size, and the allocators' own slack at a few
    megabytes. ``tests/conversations/test_image_memory.py`` checks these figures against
    measured peaks.
    """
    width, height = image.size
    per_pixel = _stored_bytes_per_pixel(image.mode)
    if image.mode not in ("RGB", "RGBA"):
        per_pixel += 4  # converted to RGB or RGBA at full size
    if image.mode.startswith("I;16"):
        per_pixel += 1  # through eight-bit grey on the way
    if "A" in image.getbands() or "transparency" in image.info:
        per_pixel += 1 + 4
    if image.format == "WEBP":
        per_pixel += 4 + 4 + 4
    fitted_width, fitted_height = _fitted(image.size, max_side)
    resizing = 4 * fitted_width * height
    results = 2 * 4 * fitted_width * fitted_height
    return width * height * per_pixel + resizing + results + DECODING_SLACK


def _stored_bytes_per_pixel(mode: str) -> int:
    """Pillow keeps one byte per pixel for bilevel, grey and palette images, two for 16-bit
    grey, and four for every other mode (RGB too, padded)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _check_decoding_bytes(image: Image.Image, name: str, limits: ImageLimits) -> None:
    needed = decoding_bytes(image, limits.max_side)
    if needed > limits.max_decoding_bytes:
        raise ImageRejected(
            name,
            gettext(
                "“%(name)s” is %(dimensions)s pixels, which would take %(needed)s of memory "
                "to read; the limit is %(limit)s. Send a smaller image or a JPEG."
            ),
            dimensions=_dimensions(image.size),
            needed=file_size(needed),
            limit=file_size(limits.max_decoding_bytes),
        )


def _dimensions(size: tuple[int, int]) -> str:
    return f"{size[0]:,} \N{MULTIPLICATION SIGN} {size[1]:,}"


def _megapixels(limits: ImageLimits) -> str:
    return f"{limits.max_pixels / 1_000_000:g}"


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled down, keeping its proportions, so neither side exceeds ``max_side``."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rgb_or_rgba(image: Image.Image) -> Image.Image:
    """The image in RGB, or RGBA if it has any transparency (a GIF's or a PNG's too)."""
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if has_alpha:
        image = image if image.mode == "RGBA" else image.convert("RGBA")
        if image.getchannel("A").getextrema()[0] < 255:
            return image
    if image.mode == "I;16":
        # Sixteen bits per pixel do not convert to RGB directly.
        image = image.point(lambda value: value / 256, "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _resized(image: Image.Image, max_side: int) -> Image.Image:
    size = _fitted(image.size, max_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Colours as the profile meant them, in sRGB (phone photos are often Display P3)."""
    if not icc_profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # A broken or unusual profile: keep the colours as they are.


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation; a picture whose EXIF is broken is taken as it is stored."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return orientation if isinstance(orientation, int) else 1


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    transpose = _UPRIGHT.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def _encoded(image: Image.Image, *, lossless_source: bool) -> tuple[str, str, bytes]:
    """Content type, file extension and bytes: PNG where transparency matters, else JPEG."""
    if image.mode == "RGBA":
        data = _save(image, "PNG", compress_level=6)
        if len(data) <= UPSTREAM_MAX_IMAGE_BYTES:
            return "image/png", "png", data
        return "image/webp", "webp", _save(image, "WEBP", quality=WEBP_QUALITY)
    # Full-resolution colour keeps the text of screenshots and diagrams sharp.
    options = {"quality": JPEG_QUALITY, "subsampling": "4:4:4" if lossless_source else "4:2:0"}
    try:
        data = _save(image, "JPEG", optimize=True, **options)
    except OSError:
        # Pillow's buffer for an optimized JPEG is too small for a picture of noise.
        data = _save(image, "JPEG", **options)
    return "image/jpeg", "jpg", data


def _thumbnail(image: Image.Image) -> bytes:
    thumbnail = image.copy()
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return _save(thumbnail, "WEBP", quality=THUMBNAIL_QUALITY)


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()
