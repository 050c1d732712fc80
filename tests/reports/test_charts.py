"""The one chart module: what a finance reader needs of every chart (labelled money
axes, whole seat ticks, y from 0, no marks that mean nothing), in SVG and PNG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulator.org import load_org
from simulator.reports import charts
from simulator.reports.plots import months_chart, sweep_chart

SVG = "{http://www.w3.org/2000/svg}"


def _month(month: str, support: tuple[int, float], team: tuple[int, float]) -> dict:
    def model(seats: int, cost: float) -> dict:
        return {"seats": seats, "peak_seats": seats, "billed_seats": seats, "cost": cost}

    cheaper = "support" if support[1] < team[1] else "team" if team[1] < support[1] else "equal"
    return {
        "month": month,
        "support": model(*support),
        "team": model(*team),
        "cheaper_model": cheaper,
        "active_senders": 1,
        "new_users": 1,
    }


def _texts(svg_text: str) -> list[str]:
    return [node.text or "" for node in ET.fromstring(svg_text).iter(f"{SVG}text")]


@pytest.mark.parametrize("top", [0, 1, 3, 7, 22, 95, 1234])
def test_seat_ticks_are_whole_numbers_from_zero(top: int) -> None:
    ticks = charts.nice_ticks(top, whole=True)
    assert ticks[0] == 0 and ticks[-1] >= top
    assert all(t.is_integer() for t in ticks)
    assert 2 <= len(ticks) <= 12


def test_one_month_of_data_gets_whole_ticks_a_zero_axis_and_money_labels() -> None:
    org = load_org(None)
    chart = months_chart([_month("2026-12", (3, 75.0), (22, 220.0))], org)
    drawn = charts.svg(chart)
    texts = _texts(drawn)
    assert "USD per month" in texts and "billed seats" in texts and "month" in texts
    seat_ticks = [t for t in texts if t.replace(",", "").isdigit()]
    assert "0" in seat_ticks and "0.5" not in texts and "2.5" not in texts
    # A single month cannot show a change of the cheaper model.
    assert "cheaper model changes" not in texts


def test_a_crossover_is_drawn_only_where_the_lines_cross() -> None:
    org = load_org(None)
    flat = [_month(m, (3, 75.0), (s, s * 10.0)) for m, s in (("2026-01", 20), ("2026-02", 30))]
    assert "cheaper model changes" not in _texts(charts.svg(months_chart(flat, org)))
    crossing = [_month(m, (3, 75.0), (s, s * 10.0)) for m, s in (("2026-01", 5), ("2026-02", 9))]
    texts = _texts(charts.svg(months_chart(crossing, org)))
    assert texts.count("cheaper model changes") == 1  # on the money panel only
    rows = [
        {"volume": v, "support": {"seats": 3, "cost": 75.0}, "team": {"seats": t, "cost": t * 10.0}}
        for v, t in ((100, 20), (1000, 40))
    ]
    assert not any("crossover" in t for t in _texts(charts.svg(sweep_chart(rows, 50.0, org))))


def test_a_sweep_over_decades_says_its_volume_axis_is_log_and_money_stays_linear() -> None:
    org = load_org(None)
    rows = [
        {"volume": v, "support": {"seats": 3, "cost": 75.0}, "team": {"seats": t, "cost": t * 10.0}}
        for v, t in ((1, 5), (100, 9), (10000, 400))
    ]
    chart = sweep_chart(rows, 6.0, org)
    assert all(p.log_x for p in chart.panels)
    texts = _texts(charts.svg(chart))
    assert "emails per month (log scale)" in texts
    # Money is linear from 0: evenly spaced ticks to the top bill (a log axis would
    # step 1, 10, 100...).
    for tick in charts.nice_ticks(4000.0):
        assert charts.tick_text(tick) in texts
    assert any("crossover" in t for t in texts)


def test_every_format_is_written_and_svg_needs_no_outside_asset(tmp_path: Path) -> None:
    org = load_org(None)
    chart = months_chart([_month("2026-01", (3, 75.0), (5, 50.0))], org, links=True)
    for name in ("c.svg", "c.html", "c.png"):
        charts.save(chart, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 500
    page = (tmp_path / "c.html").read_text()
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert 'href="#ledger-2026-01"' in page
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match=r"png, \.svg or \.html"):
        charts.save(chart, tmp_path / "c.gif")
