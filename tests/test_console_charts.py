"""The dashboard's chart geometry: round, distinct ticks; columns and bars to scale."""

from datetime import date, timedelta

import pytest

from console.charts import axis_step, horizontal_bars, stacked_columns


@pytest.mark.parametrize(("largest", "intervals", "step"), [
    (0, 4, 1), (1, 4, 1), (4, 4, 1), (5, 4, 2), (37, 4, 10), (1234, 4, 500), (3, 2, 2),
    (100_000, 4, 50_000),
])
def test_the_axis_steps_on_round_numbers_and_reaches_the_largest_value(largest, intervals, step):
    assert axis_step(largest, intervals) == step
    assert step * intervals >= largest


def test_stacked_columns_are_to_scale_with_distinct_ticks():
    days = [date(2027, 3, 1) + timedelta(days=i) for i in range(14)]
    counts = {(days[-1], "read"): 30, (days[-1], "failed"): 7, (days[0], "sent"): 3}
    chart = stacked_columns(days, ["read", "sent", "failed"], counts, width=560, height=200)
    labels = [tick.label for tick in chart.y_ticks]
    assert labels == ["0", "10", "20", "30", "40"]
    last = chart.columns[-1]
    assert last.total == 37 and [s.status for s in last.segments] == ["read", "failed"]
    plot_height = chart.plot_bottom - chart.y_ticks[-1].position
    assert sum(s.height for s in last.segments) == pytest.approx(plot_height * 37 / 40, abs=0.2)
    assert last.segments[0].y + last.segments[0].height == pytest.approx(chart.plot_bottom)
    assert last.label == "14 Mar" and chart.columns[-2].label == ""  # every other, from today
    assert chart.columns[0].total == 3 and chart.columns[1].segments == []


def test_horizontal_bars_share_one_scale():
    chart = horizontal_bars([("invalid_parameter_value", 1500), ("rate_limited", 300)])
    assert [t.label for t in chart.x_ticks] == ["0", "1,000", "2,000"]
    assert [b.percent for b in chart.bars] == [75.0, 15.0]
    assert horizontal_bars([]).bars == []
