"""CPU cost of rendering a streaming reply: StreamingMarkdown's updates against one full render.

Run with ``python -m benchmarks.render``. A realistic reply of about 1,500 tokens arrives in
pieces of about 4 characters; the renderer sees the text every N tokens (every 3 is what a
50 ms frame clock sees at 60 tokens/s). The figure is the median process CPU time of several
repeats, for all updates plus ``finish()``, divided by the time of one ``render_markdown`` of
the whole text. The target is a ratio of at most 2.
"""

import json
import statistics
import time
from collections.abc import Callable

from conversations.markdown_stream import StreamingMarkdown
from conversations.rendering import render_markdown

REPEATS = 15
TOKEN_CHARS = 4

_PYTHON = '''```python
import asyncio
from dataclasses import dataclass


@dataclass
class Reading:
    sensor: str
    value: float


async def collect(sensors: list[str], every: float = 0.5) -> list[Reading]:
    """Read each sensor once, waiting ``every`` seconds between reads."""
    readings = []
    for name in sensors:
        value = await read_sensor(name)  # may raise TimeoutError
        readings.append(Reading(name, value))
        await asyncio.sleep(every)
    return sorted(readings, key=lambda reading: reading.value)
```'''

_JAVASCRIPT = """```js
const socket = new WebSocket(`wss://${location.host}/ws/readings/`);

socket.addEventListener("message", (event) => {
  const { sensor, value } = JSON.parse(event.data);
  const row = document.querySelector(`[data-sensor="${sensor}"]`);
  if (row) {
    row.querySelector(".value").textContent = value.toFixed(2);
  }
});
```"""


def realistic_reply() -> str:
    paragraph = (
        "The collector reads every sensor **once per cycle**, and the *median* of the last "
        "five readings is what the dashboard shows, so a single `NaN` or a spike from a loose "
        "wire does not move the chart. If a sensor stops answering, the reading is skipped "
        "and the [status page](https://example.com/status) marks it as ~~online~~ stale "
        "after three missed cycles."
    )
    parts = [
        "## How the collector works\n",
        paragraph,
        "Here is the loop that does the reading:",
        _PYTHON,
        "A few things are worth noting about it:\n\n"
        "- Each read has its own *timeout*, so one slow sensor delays only itself.\n"
        "- Readings are sorted by value before they are stored, which keeps the median "
        "cheap to compute.\n"
        "- The `every` argument is the pause **between** reads, not the cycle length.\n"
        "- Errors other than `TimeoutError` propagate, on purpose.",
        "### Sensor limits\n\n"
        "| Sensor | Unit | Min | Max | Poll interval |\n"
        "|:-------|:----:|----:|----:|--------------:|\n"
        "| temperature | °C | -40 | 125 | 0.5 s |\n"
        "| humidity | % | 0 | 100 | 1 s |\n"
        "| pressure | hPa | 300 | 1100 | 2 s |\n"
        "| light | lux | 0 | 65535 | 0.2 s |",
        paragraph,
        "## Why medians and not averages\n",
        "Sensors on long cables pick up *noise*, and a cheap humidity sensor sometimes answers "
        "with `0` for a whole second after a power dip. An average lets one such reading pull "
        "the chart down for minutes; the median of five ignores up to two bad readings in a "
        "row. The price is a small delay: a **real** change shows after the third reading, "
        "which at the fastest poll interval is still well under a second.",
        "> The median is robust, but it is not magic: if a sensor is broken for longer than "
        "> two cycles, the chart *will* show it, which is what you want.",
        "Two settings control this behaviour:\n\n"
        "1. `window`, the number of readings the median is taken over (default **5**).\n"
        "2. `stale_after`, the number of missed cycles before a sensor is marked stale.\n"
        "3. Both can be set per sensor in `sensors.toml`, for example `window = 9` for the "
        "noisy humidity sensor.",
        paragraph,
        "## Showing the readings live\n",
        "The page subscribes to the readings over a websocket and updates one row per message:",
        _JAVASCRIPT,
        paragraph,
        "### Next steps\n\n"
        "1. Add a **retry with backoff** for sensors that time out twice in a row.\n"
        "2. Store the raw readings for a week, and the medians for a year.\n"
        "3. Alert when a value leaves its range in the table above for more than a minute.",
        paragraph,
        "## Storing the readings\n",
        "Raw readings go to a table partitioned **by day**, so that dropping a week-old "
        "partition is instant and never locks the table the collector writes to. Medians go "
        "to a second table with one row per sensor per minute; a year of them for forty "
        "sensors is about *twenty million* rows, which an index on `(sensor, minute)` keeps "
        "fast to query for any chart the dashboard draws.",
        paragraph,
        "That should be enough to get started; ask if you want the storage part written out.",
    ]
    return "\n\n".join(parts) + "\n"


def token_pieces(text: str) -> list[str]:
    return [text[start : start + TOKEN_CHARS] for start in range(0, len(text), TOKEN_CHARS)]


def stream(text: str, tokens_per_frame: int) -> None:
    renderer = StreamingMarkdown()
    pieces = token_pieces(text)
    end = 0
    for index, piece in enumerate(pieces, start=1):
        end += len(piece)
        if index % tokens_per_frame == 0:
            renderer.update(text[:end])
    renderer.update(text)
    renderer.finish()


def cpu_seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    text = realistic_reply()
    render_markdown(text)  # warm caches: lexers, regexes
    stream(text, 1)
    frames = (3, 1)
    full: list[float] = []
    streamed: dict[int, list[float]] = {n: [] for n in frames}
    # Interleaved, so that a busy machine slows both sides alike.
    for _ in range(REPEATS):
        full.append(cpu_seconds(lambda: render_markdown(text)))
        for n in frames:
            streamed[n].append(cpu_seconds(lambda n=n: stream(text, n)))
    full_median = statistics.median(full)
    results = {"chars": len(text), "tokens": len(token_pieces(text)), "full_ms": full_median * 1000}
    for n in frames:
        median = statistics.median(streamed[n])
        results[f"every_{n}_tokens_ms"] = median * 1000
        results[f"every_{n}_tokens_ratio"] = median / full_median
        print(
            f"update every {n} token(s): {median * 1000:.1f} ms CPU, "
            f"{median / full_median:.2f}x one full render ({full_median * 1000:.1f} ms)"
        )
    print(json.dumps({name: round(value, 3) for name, value in results.items()}))


if __name__ == "__main__":
    main()
