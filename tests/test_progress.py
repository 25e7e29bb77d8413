"""Progress bars: on when asked (or on a terminal), silent in CI logs and captured output."""

from __future__ import annotations

from scene_assets.progress import progress_bar, track


def test_bars_are_silent_when_output_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("SCENE_MATCHER_PROGRESS", raising=False)
    assert list(track(range(5), "work")) == [0, 1, 2, 3, 4]
    bar = progress_bar(3, "encode", unit="img")
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""


def test_bars_can_be_forced_on_and_off(capsys, monkeypatch):
    monkeypatch.setenv("SCENE_MATCHER_PROGRESS", "1")
    assert sum(track(range(4), "weight sweep", unit="config")) == 6
    assert "weight sweep" in capsys.readouterr().err
    monkeypatch.setenv("SCENE_MATCHER_PROGRESS", "0")
    assert list(track([1, 2], "quiet")) == [1, 2]
    assert capsys.readouterr().err == ""
