"""Under load, each streaming reply sends frames less often, so relaying stays cheap."""

import pytest

from conversations import generation


@pytest.mark.parametrize(
    ("streaming", "factor"), [(0, 1.0), (20, 1.0), (50, 1.0), (100, 2.0), (200, 4.0), (900, 5.0)]
)
def test_frames_slow_down_only_beyond_the_budget_and_at_most_five_times(
    settings, monkeypatch, streaming, factor
):
    settings.WEBCHAT_FRAME_INTERVAL = 0.05
    settings.WEBCHAT_FRAME_BUDGET = 1000  # 50 replies at 20 frames a second
    monkeypatch.setattr(generation, "_running", dict.fromkeys(range(streaming)))

    assert generation.load_factor() == factor
