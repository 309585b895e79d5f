"""The serving benchmark's report: table rows, the per-model Markdown table and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks._common import Row
from benchmarks._serve_chart import Panel, draw
from benchmarks._serve_models import BenchModel
from benchmarks._serve_stats import ratio_ci, summary

TARGET = "<= 1.03x at p50"
APIS = {"grpc": "gRPC", "rest": "REST (JSON)"}
#: The formats measured over REST too (see bench_serve.REST_EVERY).
REST_FORMATS = ("saved_model",)
Times = dict[tuple[str, str], Any]


def apis(m: BenchModel) -> list[tuple[str, str]]:
    return [(api, name) for api, name in APIS.items() if api == "grpc" or m.fmt in REST_FORMATS]


def label(m: BenchModel) -> str:
    return f"{m.label} ({m.size_mb:.0f} MB)"


def rows(models: list[BenchModel], times: Times) -> list[Row]:
    out: list[Row] = []
    for m in models:
        what = label(m)
        native = summary(times, (m.name, "native"))
        for api, api_name in apis(m):
            plain = summary(times, (m.name, f"{api}/plain"))
            secure = summary(times, (m.name, f"{api}/securetf"))
            ratio, lo, hi = ratio_ci(
                times[(m.name, f"{api}/securetf")], times[(m.name, f"{api}/plain")]
            )
            vs = "securetf serve under securetf run vs plain server"
            n = int(secure["n"])
            out.append(
                Row(
                    "serve",
                    f"{what}, {api_name} p50: {vs} "
                    f"(ratio {ratio:.3f}, 95% CI {lo:.3f}-{hi:.3f}, n={n})",
                    secure["p50"],
                    "ms",
                    "plain server, no TLS",
                    plain["p50"],
                    TARGET,
                )
            )
            out.append(
                Row(
                    "serve",
                    f"{what}, {api_name} p99: {vs}",
                    secure["p99"],
                    "ms",
                    "plain server, no TLS",
                    plain["p99"],
                )
            )
            if (m.name, f"{api}/tls") in times:
                tls = summary(times, (m.name, f"{api}/tls"))
                _, t_lo, t_hi = ratio_ci(
                    times[(m.name, f"{api}/tls")], times[(m.name, f"{api}/plain")]
                )
                out.append(
                    Row(
                        "serve",
                        f"{what}, {api_name} p50: of that, TLS alone (securetf serve with TLS "
                        f"outside the runtime) vs plain server (95% CI {t_lo:.3f}-{t_hi:.3f})",
                        tls["p50"],
                        "ms",
                        "plain server, no TLS",
                        plain["p50"],
                    )
                )
            if api == "grpc":
                out.append(
                    Row(
                        "serve",
                        f"{what}, {api_name} p50: plain server vs the model in-process",
                        plain["p50"],
                        "ms",
                        "in-process, no securetf",
                        native["p50"],
                    )
                )
                out.append(
                    Row(
                        "serve",
                        f"{what}, {api_name} throughput, 1 client: {vs}",
                        secure["rps"],
                        "req/s",
                        "plain server, no TLS",
                        plain["rps"],
                    )
                )
    return out


def detail(models: list[BenchModel], times: Times, stamp: str) -> str:
    lines = [
        f"Serving benchmark, {stamp}: p50 / p99 latency in ms, one client, one image per "
        "request; throughput in requests/s of that client.",
        "",
        "| model | API | in-process | plain server | securetf serve | securetf / plain at p50 "
        "(95% CI) | of that, TLS alone | plain / in-process at p50 | req/s securetf / plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        nat = summary(times, (m.name, "native"))
        for api, api_name in apis(m):
            p = summary(times, (m.name, f"{api}/plain"))
            s = summary(times, (m.name, f"{api}/securetf"))
            r, lo, hi = ratio_ci(
                times[(m.name, f"{api}/securetf")], times[(m.name, f"{api}/plain")]
            )
            tls = "-"
            if (m.name, f"{api}/tls") in times:
                t, t_lo, t_hi = ratio_ci(
                    times[(m.name, f"{api}/tls")], times[(m.name, f"{api}/plain")]
                )
                tls = f"{t:.3f} ({t_lo:.3f}-{t_hi:.3f})"
            lines.append(
                f"| {label(m)} | {api_name} | {nat['p50']:.1f} / {nat['p99']:.1f} "
                f"| {p['p50']:.1f} / {p['p99']:.1f} | {s['p50']:.1f} / {s['p99']:.1f} "
                f"| {r:.3f} ({lo:.3f}-{hi:.3f}) | {tls} | {p['p50'] / nat['p50']:.3f} "
                f"| {s['rps']:.2f} / {p['rps']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def chart(out: Path, models: list[BenchModel], times: Times, stamp: str) -> None:
    panels: dict[str, Panel] = {}
    for api, api_name in APIS.items():
        shown = [m for m in models if (api, api_name) in apis(m)]
        values = {}
        for m in shown:
            for series, key in (
                ("native", "native"),
                ("plain", f"{api}/plain"),
                ("securetf", f"{api}/securetf"),
            ):
                s = summary(times, (m.name, key))
                values[(m.name, series)] = (s["p50"], s["p99"])
        labels = [(m.name, label(m).replace(" (", "\n(")) for m in shown]
        panels[api_name] = Panel(labels, values)
    draw(out, panels, f"securetf serve, one client, one image per request ({stamp})")
