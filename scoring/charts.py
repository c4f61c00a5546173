"""Server-drawn line charts: points in, SVG coordinates out.

A pure function with no Django and no I/O, so the numbers the template draws can be tested
exactly. The template renders ``<svg viewBox="0 0 {{ chart.width }} {{ chart.height }}">``
with a ``<polyline>`` through ``chart.polyline`` and the axis labels in ``x_ticks`` and
``y_ticks``; no chart library and nothing fetched from elsewhere (the pages run under a
strict Content-Security-Policy and are opened on phones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from .formatting import format_number, signed

__all__ = ["format_number", "signed"]  # re-exported for the views and tests

ONE_PLACE = Decimal("0.1")
NICE_STEPS = (Decimal(1), Decimal(2), Decimal(5), Decimal(10))


@dataclass(frozen=True)
class ChartPoint:
    x: Decimal
    y: Decimal
    label: str
    value: Decimal

    @property
    def value_display(self) -> str:
        return format_number(self.value)


@dataclass(frozen=True)
class AxisTick:
    """A label on an axis: ``position`` is the x (on the x axis) or y (on the y axis)."""

    position: Decimal
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    points: list[ChartPoint]
    x_ticks: list[AxisTick]
    y_ticks: list[AxisTick]
    reference_y: Decimal | None

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of the SVG ``<polyline>``: "x,y x,y …"."""
        return " ".join(f"{point.x},{point.y}" for point in self.points)

    @property
    def x_label_y(self) -> int:
        """Baseline of the x-axis labels, under the plot."""
        return self.bottom + 16

    @property
    def y_label_x(self) -> int:
        """Right edge of the y-axis labels, left of the plot."""
        return self.left - 4


def nice_step(span: Decimal, intervals: int, minimum: Decimal) -> Decimal:
    """The smallest step of the form 1, 2 or 5 × 10ⁿ (and at least ``minimum``) that covers
    ``span`` in ``intervals`` steps."""
    raw = span / intervals
    if raw <= minimum:
        return minimum
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for factor in NICE_STEPS:
        if factor * magnitude >= raw:
            return max(factor * magnitude, minimum)
    return max(10 * magnitude, minimum)  # unreachable: 10 × magnitude always covers raw


def _axis_bounds(
    values: Sequence[Decimal], intervals: int, minimum_step: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    low, high = min(values), max(values)
    if low == high:
        low, high = low - minimum_step, high + minimum_step
    step = nice_step(high - low, intervals, minimum_step)
    axis_low = (low / step).to_integral_value(ROUND_FLOOR) * step
    axis_high = (high / step).to_integral_value(ROUND_CEILING) * step
    return axis_low, axis_high, step


def _coordinate(value: Decimal) -> Decimal:
    return value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def line_chart(
    values: Sequence[tuple[int, Decimal]],
    *,
    x_labels: Sequence[str],
    reference: Decimal | None = None,
    width: int = 320,
    height: int = 180,
    margin_left: int = 40,
    margin_right: int = 12,
    margin_top: int = 20,
    margin_bottom: int = 24,
    y_intervals: int = 4,
    minimum_step: Decimal = Decimal(1),
) -> LineChart:
    """A line through ``values`` — (slot, value) pairs, slot 1 being ``x_labels[0]`` — on a
    plot of ``len(x_labels)`` equal columns, each point in the middle of its column.

    The y axis runs between round numbers (steps of 1, 2 or 5 × 10ⁿ) that include every
    value and ``reference`` (drawn as a dashed line, e.g. the base score). Coordinates are
    Decimals rounded to one place, so the same data always give the same SVG."""
    if not x_labels:
        raise ValueError("a chart needs at least one x slot")
    for slot, _value in values:
        if not 1 <= slot <= len(x_labels):
            raise ValueError(f"slot {slot} is outside 1..{len(x_labels)}")
    left, right = margin_left, width - margin_right
    top, bottom = margin_top, height - margin_bottom
    plot_width, plot_height = Decimal(right - left), Decimal(bottom - top)
    column = plot_width / len(x_labels)

    def x_of(slot: int) -> Decimal:
        return _coordinate(left + column * (slot - Decimal("0.5")))

    scale_values = [value for _slot, value in values]
    if reference is not None:
        scale_values.append(reference)
    if not scale_values:
        scale_values = [Decimal(0)]
    axis_low, axis_high, step = _axis_bounds(scale_values, y_intervals, minimum_step)

    def y_of(value: Decimal) -> Decimal:
        return _coordinate(bottom - (value - axis_low) / (axis_high - axis_low) * plot_height)

    y_ticks = []
    tick = axis_low
    while tick <= axis_high:
        y_ticks.append(AxisTick(position=y_of(tick), label=format_number(tick)))
        tick += step
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        points=[
            ChartPoint(x=x_of(slot), y=y_of(value), label=x_labels[slot - 1], value=value)
            for slot, value in sorted(values)
        ],
        x_ticks=[
            AxisTick(position=x_of(slot), label=label)
            for slot, label in enumerate(x_labels, start=1)
        ],
        y_ticks=y_ticks,
        reference_y=y_of(reference) if reference is not None else None,
    )


# --- bar charts (the committee overview) ------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar: the rectangle (``x``, ``y``, ``width``, ``height``), the category label's
    anchor (``label_x``, ``label_y``) and the value label's (``value_x``, ``value_y``)."""

    label: str
    value: int
    share: Decimal  # percent of all bars' values, one decimal (0 when they are all 0)
    x: Decimal
    y: Decimal
    width: Decimal
    height: Decimal
    label_x: Decimal
    label_y: Decimal
    value_x: Decimal
    value_y: Decimal


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    horizontal: bool
    bars: list[Bar]
    ticks: list[AxisTick]  # value gridlines: y positions (columns) or x positions (rows)
    total: int
    edges: list[AxisTick] = field(default_factory=list)  # labels between columns, if any

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    @property
    def plot_width(self) -> int:
        return self.right - self.left

    @property
    def x_label_y(self) -> int:
        """Baseline of the labels under the columns."""
        return self.bottom + 15

    @property
    def y_label_x(self) -> int:
        """Right edge of the value labels, left of the plot (columns)."""
        return self.left - 4

    @property
    def description(self) -> str:
        """The chart as text (for ``<desc>`` and screen readers): "五星 3；四星 1"."""
        return "；".join(f"{bar.label} {bar.value}" for bar in self.bars)


def _share(value: int, total: int) -> Decimal:
    if not total:
        return Decimal(0)
    return (Decimal(value) * 100 / total).quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def _value_axis(maximum: int, intervals: int) -> tuple[Decimal, Decimal]:
    """(axis top, step) for counts 0..``maximum``: whole steps of 1, 2 or 5 × 10ⁿ."""
    step = nice_step(Decimal(max(maximum, 1)), intervals, Decimal(1))
    high = (Decimal(max(maximum, 1)) / step).to_integral_value(ROUND_CEILING) * step
    return high, step


def column_chart(
    values: Sequence[tuple[str, int]],
    *,
    width: int = 380,
    height: int = 190,
    margin_left: int = 30,
    margin_right: int = 8,
    margin_top: int = 18,
    margin_bottom: int = 24,
    intervals: int = 4,
    edge_labels: Sequence[str] | None = None,
) -> BarChart:
    """Vertical bars (a histogram): one equal column per (label, count), bars from 0 up, the
    count above each bar, the label under it, gridlines at round counts.

    With ``edge_labels`` (one fewer than the bars, e.g. the band limits 60, 70, …) the axis
    is labelled at the boundaries between the columns instead of under each one: a
    histogram's bins stay readable when their names ("100–110") are wider than a column."""
    if not values:
        raise ValueError("a chart needs at least one bar")
    if edge_labels is not None and len(edge_labels) != len(values) - 1:
        raise ValueError("edge labels go between the bars: one fewer than the bars")
    left, right = margin_left, width - margin_right
    top, bottom = margin_top, height - margin_bottom
    plot_height = Decimal(bottom - top)
    column = Decimal(right - left) / len(values)
    gap = column * Decimal("0.2")
    high, step = _value_axis(max(value for _label, value in values), intervals)
    total = sum(value for _label, value in values)

    def y_of(value: Decimal) -> Decimal:
        return _coordinate(bottom - value / high * plot_height)

    bars = []
    for index, (label, value) in enumerate(values):
        x = _coordinate(left + column * index + gap / 2)
        y = y_of(Decimal(value))
        centre = _coordinate(left + column * index + column / 2)
        bars.append(
            Bar(
                label=label,
                value=value,
                share=_share(value, total),
                x=x,
                y=y,
                width=_coordinate(column - gap),
                height=_coordinate(bottom - y),
                label_x=centre,
                label_y=Decimal(bottom + 15),
                value_x=centre,
                value_y=y - 4,
            )
        )
    ticks = []
    tick = Decimal(0)
    while tick <= high:
        ticks.append(AxisTick(position=y_of(tick), label=format_number(tick)))
        tick += step
    return BarChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        horizontal=False,
        bars=bars,
        ticks=ticks,
        total=total,
        edges=[
            AxisTick(position=_coordinate(left + column * index), label=label)
            for index, label in enumerate(edge_labels or [], start=1)
        ],
    )


def row_chart(
    values: Sequence[tuple[str, int]],
    *,
    width: int = 360,
    row_height: int = 26,
    label_width: int = 76,
    value_width: int = 84,
    margin_top: int = 6,
    margin_bottom: int = 6,
) -> BarChart:
    """Horizontal bars (a distribution over named outcomes, e.g. stars or grades): one row
    per (label, count), the label on the left, the bar scaled to the largest count, the count
    and its share after the bar. The height follows the number of rows."""
    if not values:
        raise ValueError("a chart needs at least one bar")
    left, right = label_width, width - value_width
    top = margin_top
    height = margin_top + row_height * len(values) + margin_bottom
    maximum = max(value for _label, value in values)
    total = sum(value for _label, value in values)
    plot_width = Decimal(right - left)
    bar_height = _coordinate(Decimal(row_height) * Decimal("0.62"))
    bars = []
    for index, (label, value) in enumerate(values):
        row_top = Decimal(top + row_height * index)
        length = _coordinate(plot_width * value / maximum) if maximum else Decimal(0)
        middle = _coordinate(row_top + Decimal(row_height) / 2)
        bars.append(
            Bar(
                label=label,
                value=value,
                share=_share(value, total),
                x=Decimal(left),
                y=_coordinate(middle - bar_height / 2),
                width=length,
                height=bar_height,
                label_x=Decimal(left - 6),
                label_y=middle,
                value_x=_coordinate(left + length + 6),
                value_y=middle,
            )
        )
    return BarChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=height - margin_bottom,
        horizontal=True,
        bars=bars,
        ticks=[],
        total=total,
    )
