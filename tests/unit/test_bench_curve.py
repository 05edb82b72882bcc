"""The fleet-scale benchmark's cost model fit and picture (benchmarks/curve.py)."""

import xml.dom.minidom

import pytest

from benchmarks.curve import fit_cost, nice_ceiling, predict, svg_curves


def test_fit_recovers_a_fixed_a_per_node_and_a_per_pair_cost():
    points = [(n, 3 + 0.5 * n + 0.02 * n * n) for n in (4, 8, 16, 24)]
    fit = fit_cost(points)
    assert fit == pytest.approx({"fixed": 3, "per_node": 0.5, "per_pair": 0.02})
    assert predict(fit, 1000) == pytest.approx(3 + 500 + 20000)


def test_fit_never_predicts_a_cost_that_shrinks_with_the_fleet():
    # noise that an unconstrained quadratic would turn into a negative N^2 term
    points = [(4, 10.0), (8, 20.0), (16, 33.0), (24, 40.0)]
    fit = fit_cost(points)
    assert min(fit.values()) >= 0
    assert predict(fit, 1000) >= predict(fit, 24)


def test_noise_on_a_line_does_not_invent_a_per_pair_cost():
    points = [(4, 20.5), (8, 39.0), (16, 81.0), (24, 119.5)]  # about 5 s per node
    fit = fit_cost(points)
    assert fit["per_pair"] == 0
    assert fit["per_node"] == pytest.approx(5, rel=0.05)


def test_fit_uses_fewer_terms_than_points():
    fit = fit_cost([(4, 10.0), (24, 30.0)])
    assert sum(1 for value in fit.values() if value) == 1


def test_fit_of_a_constant_is_the_constant():
    fit = fit_cost([(4, 5.0), (8, 5.0), (16, 5.0)])
    assert fit == pytest.approx({"fixed": 5, "per_node": 0, "per_pair": 0})


def test_fit_needs_points():
    with pytest.raises(ValueError):
        fit_cost([])


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0.3, 0.3), (7, 8), (26, 30), (201, 250), (1000, 1000), (0, 1)]
)
def test_axis_ends_on_a_round_number(value, ceiling):
    assert nice_ceiling(value) == pytest.approx(ceiling)


def test_picture_is_svg_with_a_line_per_topology():
    runs = [
        {
            "topology": t,
            "nodes": n,
            "converge_s": n * k,
            "join_s": n,
            "audit_s": 2.0,
            "master_peak_mib": 700.0,
            "minion_peak_mib": 200.0,
        }
        for t, k in (("mesh", 2), ("hub", 1))
        for n in (4, 8)
    ]
    svg = svg_curves(runs, "fleet <scale>")
    doc = xml.dom.minidom.parseString(svg)
    assert doc.documentElement.tagName == "svg"
    # converge, join, audit: one line per topology; memory: master and minion each
    assert len(doc.getElementsByTagName("polyline")) == 3 * 2 + 2 * 2
    assert "fleet &lt;scale&gt;" in svg
