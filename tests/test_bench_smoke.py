"""bench/run.py cannot rot silently: it imports, and its pure parts (wrk's output, the
ratios, the JSON layout, the goals, the table) give the issue's keys from fake numbers.
CI does not run the benchmark itself."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def figure(req_s: float, p99: float = 20.0) -> dict[str, Any]:
    return {"req_s": req_s, "p50_ms": 5.0, "p99_ms": p99, "requests": 10, "failed": 0}


def fake_results() -> dict[str, Any]:
    bare = {c: figure(2000.0) for c in ("1", "16", "64")}
    api = {c: figure(1500.0, p99=40.0) for c in ("1", "16", "64")}
    delivery = {
        c: figure(800.0) | {"expected": 30, "delivered": 30, "last_delivery_after_s": 0.2}
        for c in ("1", "16", "64")
    }
    return {
        "ingest": {"bare_strawberry": bare, "api_only": api, "with_delivery": delivery},
        "batch": {
            "calls": 5,
            "per_call": 1000,
            "seconds": 1.0,
            "events_per_s": 10_000.0,
            "raw_sqlite_events_per_s": 40_000.0,
        },
        "delivery": {
            "deliveries": 5000,
            "tocsin_per_s": 4000.0,
            "aiohttp_per_s": 8000.0,
            "apprise_per_s": 1000.0,
        },
        "e2e_latency_ms": {"rate_per_s": 200, "seconds": 5, "events": 1000, "p50": 4, "p99": 60},
        "isolation": {"alone_per_s": 4000.0, "with_hanging_per_s": 3800.0},
        "peak_rss_mb": 120.0,
    }


def test_run_imports_and_plans_a_quick_run_shorter_than_the_full_one() -> None:
    run = load("run")
    assert sum(run.QUICK.seconds.values()) < sum(run.FULL.seconds.values())
    assert run.QUICK.latency_seconds == 5 and run.FULL.latency_seconds == 20
    assert callable(run.main)


def test_the_report_has_every_key_of_the_issue_with_ratios_from_the_same_figures() -> None:
    report = load("report").build_report(fake_results(), {"quick": True})
    assert report["ingest_p99_ms"] == 40.0
    assert report["batch_events_per_s"] == 10_000.0
    assert report["ratios"] == {
        "ingest_vs_bare_strawberry": 0.75,
        "ingest_with_delivery_vs_bare_strawberry": 0.4,
        "batch_vs_raw_sqlite": 0.25,
        "delivery_vs_aiohttp": 0.5,
        "delivery_vs_apprise": 4.0,
        "isolation": 0.95,
    }
    assert report["e2e_latency_ms"]["p50"] == 4 and "p99" in report["e2e_latency_ms"]
    assert report["peak_rss_mb"] == 120.0
    met = report["goals_met"]
    assert met["e2e_latency_ms.p99"] is False
    assert all(ok for key, ok in met.items() if key != "e2e_latency_ms.p99")


def test_a_missing_baseline_gives_no_ratio_rather_than_a_division_by_zero() -> None:
    results = fake_results()
    results["delivery"]["apprise_per_s"] = 0.0
    report = load("report").build_report(results, {})
    assert report["ratios"]["delivery_vs_apprise"] is None
    assert report["goals_met"]["ratios.delivery_vs_apprise"] is None


def test_the_table_names_every_figure() -> None:
    report = load("report")
    text = report.table(report.build_report(fake_results(), {}))
    for words in ("API only, 16 clients", "with delivery, 64 clients", "raw sqlite3", "Apprise"):
        assert words in text
    assert "30/30 delivered" in text


WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:1/graphql
  1 threads and 16 connections
  Latency Distribution
     50%    7.50ms
     75%   10.00ms
     90%   15.00ms
     99%    1.20s
  4000 requests in 4.00s, 1.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1000.25
"""


def test_wrk_output_is_read_in_milliseconds() -> None:
    parsed = load("report").parse_wrk(WRK_OUTPUT)
    assert parsed == {
        "req_s": 1000.25,
        "p50_ms": 7.5,
        "p99_ms": 1200.0,
        "requests": 4000,
        "failed": 3,
    }


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, 0.0), ([3.0, 1.0, 2.0], 0.5, 2.0), (list(map(float, range(1, 101))), 0.99, 99.0)],
)
def test_percentiles_are_nearest_rank(
    values: list[float], fraction: float, expected: float
) -> None:
    assert load("report").percentile(values, fraction) == expected
