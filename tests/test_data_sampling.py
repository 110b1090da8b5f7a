"""Temporal sampling: random training windows, evenly spread eval windows, short clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hi2m.data.sampling import eval_windows, train_window, train_windows, window_at, window_span


def test_window_span():
    assert window_span(16, 4) == 61
    assert window_span(16, 1) == 16
    with pytest.raises(ValueError):
        window_span(0, 4)


def test_train_windows_stay_inside_the_clip_and_cover_all_starts():
    gen = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(400):
        w = train_window(70, 16, 4, gen)
        assert w.shape == (16,)
        assert np.all(np.diff(w) == 4)
        assert 0 <= w[0] and w[-1] <= 69
        starts.add(int(w[0]))
    assert starts == set(range(70 - 61 + 1))  # every legal start is drawn


@pytest.mark.parametrize("make", [lambda s: torch.Generator().manual_seed(s), lambda s: np.random.default_rng(s)])
def test_train_window_is_deterministic_for_a_seeded_generator(make):
    a = [train_window(500, 16, 4, make(7)) for _ in range(3)]
    b = [train_window(500, 16, 4, make(7)) for _ in range(3)]
    c = [train_window(500, 16, 4, make(8)) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(a[0], z) for z in c)


def test_eval_windows_are_evenly_spread_from_start_to_end():
    windows = eval_windows(200, 16, 4, num_windows=3)
    starts = [int(w[0]) for w in windows]
    assert starts[0] == 0
    assert int(windows[-1][-1]) == 199  # the last window ends on the last frame
    assert starts[1] - starts[0] == pytest.approx(starts[2] - starts[1], abs=1)
    single = eval_windows(200, 16, 4, num_windows=1)
    assert int(single[0][0]) == (200 - 61) // 2  # a single window is centred


def test_short_clip_loops_by_default_and_pads_on_request():
    assert train_window(3, 8, 1).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert window_at(0, 3, 8, 1, short="pad").tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    looped = eval_windows(10, 16, 4, num_windows=2)
    assert all(w.max() < 10 for w in looped)
    assert np.array_equal(looped[0], looped[1])
    assert window_at(0, 10, 4, 4, short="pad").tolist() == [0, 4, 8, 9]


def test_zero_frames_and_bad_policy_are_errors():
    with pytest.raises(ValueError, match="0 frames"):
        train_window(0, 16, 4)
    with pytest.raises(ValueError, match="short"):
        window_at(0, 10, 4, 1, short="wrap")


def test_repeated_windows_differ():
    gen = torch.Generator().manual_seed(3)
    windows = train_windows(400, 16, 4, repeats=4, generator=gen)
    assert len(windows) == 4
    assert len({int(w[0]) for w in windows}) > 1
