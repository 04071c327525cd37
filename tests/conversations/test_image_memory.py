"""The memory ``images.decoding_bytes`` judges from an image's header is what normalizing it
takes at most: each case is normalized in a fresh process, whose peak resident memory
(VmHWM, reset first through /proc/self/clear_refs) is measured."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests import image_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MEASURE = """
import io, json, sys
from PIL import Image
from conversations import images

def status(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key))

data = open(sys.argv[1], "rb").read()
limits = images.ImageLimits(max_pixels=10**9, max_decoding_bytes=10**12)
with Image.open(io.BytesIO(data)) as image:
    image.draft(None, images._fitted(image.size, limits.max_side))
    judged = images.decoding_bytes(image, limits.max_side)
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")
before = status("VmRSS")
images.normalize(io.BytesIO(data), filename="image", limits=limits)
print(json.dumps({"judged": judged, "peak": status("VmHWM") - before}))
"""

CASES = {
    "one-bit PNG (the decompression bomb)": ("1", "PNG", (6300, 6300)),
    "grey PNG": ("L", "PNG", (4000, 3000)),
    "palette GIF": ("P", "GIF", (4000, 3000)),
    "RGB PNG": ("RGB", "PNG", (4000, 3000)),
    "RGBA PNG": ("RGBA", "PNG", (4000, 3000)),
    "grey and alpha PNG": ("LA", "PNG", (4000, 3000)),
    "16-bit grey PNG": ("I;16", "PNG", (4000, 3000)),
    "RGB WEBP": ("RGB", "WEBP", (4000, 3000)),
    "RGBA WEBP": ("RGBA", "WEBP", (4000, 3000)),
    "CMYK JPEG": ("CMYK", "JPEG", (6300, 6300)),
    "wide RGB PNG": ("RGB", "PNG", (12000, 3000)),
}


@pytest.mark.parametrize("case", CASES.keys())
def test_normalizing_takes_no_more_memory_than_judged_from_the_header(case, tmp_path):
    mode, format, size = CASES[case]
    image = Image.new(mode, size)
    if "A" in mode:
        image.putpixel((0, 0), (0,) * len(mode))  # transparent somewhere: kept as such
    path = tmp_path / "image"
    path.write_bytes(image_files.encoded(image, format))

    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    figures = json.loads(result.stdout)
    assert figures["peak"] <= figures["judged"]
    assert figures["peak"] >= 0.6 * figures["judged"], "the judgement wastes the limit"
