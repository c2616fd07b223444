"""The pure parts of bench/run.py: percentiles, wrk's output, the ratios, the JSON layout
and the table. No I/O here, so tests/test_bench_smoke.py can check them with fake numbers."""

from __future__ import annotations

import math
import re
from typing import Any

CLIENTS = (1, 16, 64)
"Concurrent clients of each ingest figure; the ratios use 16."
RATIO_CLIENTS = 16

GOALS: dict[str, tuple[str, float]] = {
    "ratios.ingest_vs_bare_strawberry": (">=", 0.7),
    "ingest_p99_ms": ("<=", 50),
    "ratios.ingest_with_delivery_vs_bare_strawberry": (">=", 0.4),
    "ratios.batch_vs_raw_sqlite": (">=", 0.25),
    "ratios.delivery_vs_aiohttp": (">=", 0.5),
    "ratios.delivery_vs_apprise": (">=", 3),
    "e2e_latency_ms.p50": ("<=", 10),
    "e2e_latency_ms.p99": ("<=", 50),
    "ratios.isolation": (">=", 0.9),
    "peak_rss_mb": ("<=", 200),
}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def load_figure(latencies_s: list[float], seconds: float, failed: int = 0) -> dict[str, Any]:
    """Requests/s with p50/p99 in ms, from one closed-loop load's latencies."""
    return {
        "req_s": round(len(latencies_s) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(latencies_s, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 2),
        "requests": len(latencies_s),
        "failed": failed,
    }


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, Any]:
    """req/s, p50 and p99 (ms) and the request count from ``wrk --latency``'s output."""

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        return round(float(match.group(1)) * _UNITS[match.group(2)], 2) if match else 0.0

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?(\d+) timeout", output)
    return {
        "req_s": float(rate.group(1)) if rate else 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(total.group(1)) if total else 0,
        "failed": (int(bad.group(1)) if bad else 0) + (int(errors.group(1)) if errors else 0),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Every ratio of the issue, each from figures of the same run."""
    ingest = results["ingest"]
    key = str(RATIO_CLIENTS)
    bare = ingest["bare_strawberry"][key]["req_s"]
    delivery = results["delivery"]
    isolation = results["isolation"]
    return {
        "ingest_vs_bare_strawberry": _ratio(ingest["api_only"][key]["req_s"], bare),
        "ingest_with_delivery_vs_bare_strawberry": _ratio(
            ingest["with_delivery"][key]["req_s"], bare
        ),
        "batch_vs_raw_sqlite": _ratio(
            results["batch"]["events_per_s"], results["batch"]["raw_sqlite_events_per_s"]
        ),
        "delivery_vs_aiohttp": _ratio(delivery["tocsin_per_s"], delivery["aiohttp_per_s"]),
        "delivery_vs_apprise": _ratio(delivery["tocsin_per_s"], delivery["apprise_per_s"]),
        "isolation": _ratio(isolation["with_hanging_per_s"], isolation["alone_per_s"]),
    }


def lookup(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def goals_met(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each goal of the issue: True, False, or None when the figure is missing."""
    met: dict[str, bool | None] = {}
    for key, (op, bound) in GOALS.items():
        value = lookup(report, key)
        met[key] = None if value is None else (value >= bound if op == ">=" else value <= bound)
    return met


def build_report(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON bench/run.py writes: the measured sections plus the derived keys."""
    key = str(RATIO_CLIENTS)
    report: dict[str, Any] = {"meta": meta, **results}
    report["ingest_p99_ms"] = results["ingest"]["api_only"][key]["p99_ms"]
    report["batch_events_per_s"] = results["batch"]["events_per_s"]
    report["ratios"] = ratios(results)
    report["goals_met"] = goals_met(report)
    return report


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value}{unit}"


def _ingest_rows(report: dict[str, Any]) -> list[list[str]]:
    ingest = report["ingest"]
    rows = []
    for clients in CLIENTS:
        c = str(clients)
        bare = ingest["bare_strawberry"][c]
        for label, name in (("API only", "api_only"), ("with delivery", "with_delivery")):
            fig = ingest[name][c]
            extra = ""
            if name == "with_delivery":
                extra = f", {fig['delivered']}/{fig['expected']} delivered, last +"
                extra += f"{fig['last_delivery_after_s']} s"
            rows.append(
                [
                    f"emitEvent {label}, {clients} clients",
                    f"{_fmt(bare['req_s'])}/s p99 {_fmt(bare['p99_ms'])} ms",
                    f"{_fmt(fig['req_s'])}/s p50 {_fmt(fig['p50_ms'])} p99 "
                    f"{_fmt(fig['p99_ms'])} ms{extra}",
                    _fmt(_ratio(fig["req_s"], bare["req_s"])),
                ]
            )
    return rows


def table(report: dict[str, Any]) -> str:
    """A Markdown table of every figure, its baseline of the same run and the ratio."""
    r, batch, delivery = report["ratios"], report["batch"], report["delivery"]
    rows = [["figure", "baseline (same run)", "Tocsin", "ratio"], *_ingest_rows(report)]
    rows.append(
        [
            f"emitEvents {batch['calls']} x {batch['per_call']}, 3 channels",
            f"raw sqlite3 {_fmt(batch['raw_sqlite_events_per_s'])} events/s",
            f"{_fmt(batch['events_per_s'])} events/s",
            _fmt(r["batch_vs_raw_sqlite"]),
        ]
    )
    rows.append(
        [
            f"drain {delivery['deliveries']} deliveries to one webhook",
            f"aiohttp {_fmt(delivery['aiohttp_per_s'])}/s; Apprise "
            f"{_fmt(delivery['apprise_per_s'])}/s",
            f"{_fmt(delivery['tocsin_per_s'])}/s",
            f"{_fmt(r['delivery_vs_aiohttp'])}; {_fmt(r['delivery_vs_apprise'])}x",
        ]
    )
    lat, iso = report["e2e_latency_ms"], report["isolation"]
    rows.append(
        [
            f"e2e latency at {lat['rate_per_s']}/s for {lat['seconds']} s",
            "-",
            f"p50 {_fmt(lat['p50'])} ms, p99 {_fmt(lat['p99'])} ms",
            "-",
        ]
    )
    rows.append(
        [
            "isolation: one receiver hangs",
            f"alone {_fmt(iso['alone_per_s'])}/s",
            f"{_fmt(iso['with_hanging_per_s'])}/s",
            _fmt(r["isolation"]),
        ]
    )
    rows.append(["peak RSS", "-", f"{_fmt(report['peak_rss_mb'])} MB", "-"])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "| --- | --- | --- | --- |")
    return "\n".join(lines)
