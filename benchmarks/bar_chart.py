"""A bar chart with error bars drawn with Pillow (no plotting library needed)."""
from __future__ import annotations

from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

BAR = (70, 110, 180)
BASELINE_BAR = (150, 150, 150)
REFERENCE = (200, 60, 60)


def bar_chart(path: str, names: Sequence[str], means: Sequence[float], stds: Sequence[float], title: str,
              y_label: str = "mIoU (%)", reference: Optional[float] = None, reference_name: str = "",
              baseline: Optional[str] = None) -> None:
    """Write a PNG: one bar per name (mean, +-std whisker), an optional dashed reference line
    (e.g. the teacher), the ``baseline`` bar in grey."""
    font = ImageFont.load_default()
    width, height = max(480, 90 * len(names) + 120), 420
    left, right, top, bottom = 70, 20, 40, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = [m + s for m, s in zip(means, stds)] + ([reference] if reference is not None else [])
    top_value = max([v for v in values if v == v] + [1.0]) * 1.1
    plot_h = height - top - bottom

    def y_of(value: float) -> float:
        return height - bottom - plot_h * max(value, 0.0) / top_value

    draw.text((left, 10), title, fill="black", font=font)
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black")
    for k in range(6):
        value = top_value * k / 5
        y = y_of(value)
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((8, y - 6), "%.1f" % value, fill="black", font=font)
    draw.text((8, top - 18), y_label, fill="black", font=font)
    slot = (width - left - right) / max(len(names), 1)
    for i, (name, mean, std) in enumerate(zip(names, means, stds)):
        x0, x1 = left + slot * (i + 0.2), left + slot * (i + 0.8)
        draw.rectangle([x0, y_of(mean), x1, height - bottom], fill=BASELINE_BAR if name == baseline else BAR)
        centre = (x0 + x1) / 2
        if std > 0:
            draw.line([(centre, y_of(mean + std)), (centre, y_of(mean - std))], fill="black", width=2)
            for v in (mean + std, mean - std):
                draw.line([(centre - 6, y_of(v)), (centre + 6, y_of(v))], fill="black", width=2)
        draw.text((x0, y_of(mean + std) - 14), "%.2f" % mean, fill="black", font=font)
        draw.text((x0, height - bottom + 6), name, fill="black", font=font)
    if reference is not None:
        y = y_of(reference)
        for x in range(left, width - right, 12):
            draw.line([(x, y), (min(x + 6, width - right), y)], fill=REFERENCE, width=2)
        draw.text((width - right - 160, y - 14), "%s %.2f" % (reference_name, reference), fill=REFERENCE, font=font)
    draw.text((left, height - bottom + 28), "bars: mean over seeds, whiskers: +-1 std", fill="black", font=font)
    image.save(path)
