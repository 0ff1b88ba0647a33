"""melanet.common.formatting: the one spelling of p-values, percents and intervals.

Expected strings are written out by hand; the shipped model cards and tables (test_readme_figures,
test_plain_language) check the same spellings in context.
"""

from __future__ import annotations

import math

from melanet.common import formatting


def test_p_value_as_a_sentence_reads_it() -> None:
    assert formatting.p_value(0.0) == "p < 0.001"
    assert formatting.p_value(0.0004) == "p < 0.001"
    assert formatting.p_value(0.001) == "p = 0.001"  # the boundary itself is a figure
    assert formatting.p_value(0.0517) == "p = 0.0517"  # below 0.1: three significant figures
    assert formatting.p_value(0.05172) == "p = 0.0517"
    assert formatting.p_value(0.5) == "p = 0.5"  # from 0.1: three decimals, trailing zeros dropped
    assert formatting.p_value(0.125) == "p = 0.125"
    assert formatting.p_value(1.0) == "p = 1"
    assert formatting.p_value(None) == "p = n/a"
    assert formatting.p_value(math.nan) == "p = n/a"
    assert "0.000" not in formatting.p_value(1e-9)


def test_p_cell_for_tables() -> None:
    assert formatting.p_cell(0.0009) == "<0.001"
    assert formatting.p_cell(0.001) == "0.001"
    assert formatting.p_cell(0.04249) == "0.042"
    assert formatting.p_cell(None) == "n/a"


def test_percent_number_and_bounds() -> None:
    assert formatting.percent(0.8333) == "83.3%"
    assert formatting.percent(0.8333, unit=" %") == "83.3 %"
    assert formatting.percent(0.83333, 2, unit="") == "83.33"
    assert formatting.percent(0.834, 0, unit=" %", missing="-") == "83 %"
    assert formatting.percent(None) == "n/a"
    assert formatting.percent(None, missing="not recorded") == "not recorded"
    assert formatting.number(0.55249) == "0.552"
    assert formatting.number(0.5, 2) == "0.50"
    assert formatting.number(None, missing="-") == "-"
    assert formatting.percent_bounds(0.436, 0.97) == " [43.6, 97.0]"
    assert formatting.percent_bounds(None, 0.97) == ""
    assert formatting.percent_bounds(0.436, None) == ""
