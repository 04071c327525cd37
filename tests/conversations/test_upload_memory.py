"""Images posted in parallel to a real server (``manage.py serve``, as in production) take
it only so far: its peak resident memory (VmHWM) stays under 400 MB, whether the images are
decompression bombs it refuses from their headers or the largest it agrees to decode.
benchmarks/RESULTS.md ("Upload memory and request limits") has the figures."""

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from conversations import images
from tests import image_files
from tests.live_server import LiveServer, sign_in

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
BOUND_MB = 400
PARALLEL = 6


@pytest.fixture
def server(tmp_path):
    server = LiveServer(
        tmp_path,
        env={"WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER": "100", "WEBCHAT_SHUTDOWN_GRACE": "0"},
    )
    server.start()
    server.create_user("alice", PASSWORD)
    yield server
    server.stop()


def _peak_megabytes(server: LiveServer) -> int:
    with open(f"/proc/{server.process.pid}/status") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return kilobytes // 1024


def _post_in_parallel(server: LiveServer, files: list[tuple[str, bytes]]) -> list[int]:
    """Six users' worth of new conversations, each with ``files``, sent at once."""
    clients = [httpx.Client(base_url=server.url, timeout=120) for _ in range(PARALLEL)]
    for client in clients:
        sign_in(client, "alice", PASSWORD)

    def post(client: httpx.Client) -> int:
        uploads = [("images", (name, data, "image/png")) for name, data in files]
        response = client.post(
            "/c/new/",
            data={"text": "What is this?"},
            files=uploads,
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        return response.status_code

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(post, clients))
    finally:
        for client in clients:
            client.close()


def test_six_messages_of_eight_decompression_bombs_are_refused_within_the_bound(server):
    bomb = image_files.png_that_passes_the_pixel_limit()

    statuses = _post_in_parallel(server, [(f"bomb{n}.png", bomb) for n in range(8)])

    assert statuses == [422] * PARALLEL
    peak = _peak_megabytes(server)
    print(f"decompression bombs: peak {peak} MB")
    assert peak < BOUND_MB


def test_six_messages_of_the_largest_images_it_decodes_stay_within_the_bound(server):
    side = 4700
    largest = image_files.encoded(Image.new("1", (side, side)), optimize=True)
    with Image.open(io.BytesIO(largest)) as image:
        needed = images.decoding_bytes(image, images.ImageLimits().max_side)
    limit = images.ImageLimits().max_decoding_bytes
    assert 0.95 * limit < needed <= limit

    statuses = _post_in_parallel(server, [(f"large{n}.png", largest) for n in range(2)])

    assert statuses == [302] * PARALLEL
    peak = _peak_megabytes(server)
    print(f"largest images decoded: peak {peak} MB")
    assert peak < BOUND_MB
