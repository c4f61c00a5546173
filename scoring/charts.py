"""Server-drawn line charts: points in, SVG coordinates out.

A pure function with no Django and no I/O, so the numbers the template draws can be tested
exactly. The template renders ``<svg viewBox="0 0 {{ chart.width }} {{ chart.height }}">``
with a ``<polyline>`` through ``chart.polyline`` and the axis labels in ``x_ticks`` and
``y_ticks``; no chart library and nothing fetched from elsewhere (the pages run under a
strict Content-Security-Policy and are opened on phones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
