"""The geometry of the dashboard's charts, drawn as inline SVG by the template: no charting
library to load, and a page that renders with JavaScript off."""

from dataclasses import dataclass, field
from datetime import date


def axis_step(largest: int, intervals: int) -> int:
    """The step between ticks for an axis of `intervals` steps that reaches `largest`: the
    smallest whole 1, 2 or 5 times a power of ten that does, so ticks fall on round numbers
    and never repeat (a top of 1 in four steps would label 0, 0, 0, 0, 1)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude * intervals >= largest:
                return step * magnitude
        magnitude *= 10


@dataclass
class Segment:
    y: float
    height: float
    status: str
    count: int


@dataclass
class Column:
    x: float
    label: str  # under the axis; empty where the dates would crowd
    day: str
    total: int
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Tick:
    position: float
    label: str


@dataclass
class StackedColumns:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    bar_width: float
    columns: list[Column]
    y_ticks: list[Tick]
    series: list[str]


def stacked_columns(days: list[date], series: list[str], counts: dict[tuple[date, str], int],
                    *, width: int = 560, height: int = 200) -> StackedColumns:
    """One column per day, stacked by series (a message status), with a y axis of five
    round ticks and a date under every other column, counting back from the last."""
    plot_left, plot_right, plot_top, plot_bottom = 44, width - 8, 10, height - 24
    plot_height = plot_bottom - plot_top
    totals = [sum(counts.get((day, name), 0) for name in series) for day in days]
    step = axis_step(max(totals, default=0), 4)
    top = 4 * step
    slot = (plot_right - plot_left) / max(len(days), 1)
    columns = []
    for index, (day, total) in enumerate(zip(days, totals, strict=True)):
        labelled = len(days) <= 7 or (len(days) - 1 - index) % 2 == 0  # today always
        column = Column(x=round(plot_left + index * slot + slot * 0.15, 1),
                        label=day.strftime("%d %b") if labelled else "",
                        day=day.isoformat(), total=total)
        base = float(plot_bottom)
        for name in series:
            count = counts.get((day, name), 0)
            if count:
                segment_height = plot_height * count / top
                base -= segment_height
                column.segments.append(Segment(round(base, 1), round(segment_height, 1),
                                               name, count))
        columns.append(column)
    y_ticks = [Tick(round(plot_bottom - plot_height * i / 4, 1), f"{step * i:,}")
               for i in range(5)]
    return StackedColumns(width, height, plot_left, plot_bottom, round(slot * 0.7, 1),
                          columns, y_ticks, series)


@dataclass
class Bar:
    label: str
    value: int
    percent: float


@dataclass
class HorizontalBars:
    bars: list[Bar]
    x_ticks: list[Tick]  # position in percent of the bar track


def horizontal_bars(rows: list[tuple[str, int]]) -> HorizontalBars:
    """Bars against a shared round scale, with ticks at 0, ½ and the top of the scale."""
    step = axis_step(max((value for _, value in rows), default=0), 2)
    return HorizontalBars(
        bars=[Bar(label, value, round(100 * value / (2 * step), 1)) for label, value in rows],
        x_ticks=[Tick(50 * i, f"{step * i:,}") for i in range(3)],
    )
