"""``docs/performance.md`` and its plots, from the results of one run."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.database import VACUUM_EVERY_S

TARGET_SHARE_OF_BASELINE = 0.60
TARGET_P99_MS = 10.0
TARGET_RSS_MB = 200.0
TARGET_DRAIN_SHARE = 0.70
TARGET_WAITING = 100_000
TARGET_P99_RATE = 50


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each of the issue's four targets."""
    rows: list[tuple[str, str, str]] = []
    rising = results.get("rising", {})
    gw_sat = rising.get("gateway", {}).get("saturated_rps")
    base_sat = rising.get("baseline", {}).get("saturated_rps")
    if gw_sat is not None and base_sat:
        share = gw_sat / base_sat
        measured = f"{gw_sat:.0f} / {base_sat:.0f} reports/s = {share:.0%}"
        outbox_sat = rising.get("outbox-baseline", {}).get("saturated_rps")
        if outbox_sat:
            measured += f" (minimal outbox gateway: {outbox_sat:.0f}/s)"
        rows.append(("saturated throughput ≥ 60 % of baseline", measured, _verdict(share >= 0.6)))
    else:
        rows.append(("saturated throughput ≥ 60 % of baseline", "–", _verdict(None)))
    at_rate = results.get("fixed") or {}
    source = ""
    if "gateway" not in at_rate:
        at_rate = _steps_at(rising, TARGET_P99_RATE)
        if "gateway" in at_rate:
            source = f" (the rising-rate step at 50/s, {at_rate['gateway']['seconds']:g} s)"

    def p99_of(name: str) -> float | None:
        value = at_rate.get(name, {}).get("latency_to_112_ms", {}).get("p99")
        return None if value is None else float(value)

    p99 = p99_of("gateway")
    references = [(label, p99_of(name)) for name, label in REFERENCES]
    beside = ", ".join(f"{label} {value:.1f}" for label, value in references if value is not None)
    if beside:
        source += f"; in the same run: {beside} ms"
    rows.append(
        (
            "p99 POST→112 ≤ 10 ms at 50 reports/s",
            "–" if p99 is None else f"{p99:.1f} ms{source}",
            _verdict(None if p99 is None else p99 <= TARGET_P99_MS),
        )
    )
    memory = results.get("memory")
    if memory:
        rss = memory["rss_peak_mb"]
        waiting = memory["waiting_for_112"]
        measured = f"{rss:.0f} MB peak with {waiting} waiting"
        verdict = (
            _verdict(rss <= TARGET_RSS_MB)
            if waiting >= TARGET_WAITING
            else f"not shown: only {waiting} waiting"
        )
        rows.append(("RSS ≤ 200 MB with 100 000 waiting", measured, verdict))
    else:
        rows.append(("RSS ≤ 200 MB with 100 000 waiting", "–", _verdict(None)))
    drain = results.get("backlog", {}).get("drain_rps")
    if drain is not None and gw_sat:
        measured = f"{drain:.0f} / {gw_sat:.0f} reports/s = {drain / gw_sat:.0%}"
        ok = drain >= TARGET_DRAIN_SHARE * gw_sat
        rows.append(("backlog drain ≥ 70 % of saturated rate", measured, _verdict(ok)))
    else:
        rows.append(("backlog drain ≥ 70 % of saturated rate", "–", _verdict(None)))
    return rows


PHASE_COLUMNS = (
    "offered/s",
    "achieved/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "CPU s/1000",
    "peak RSS MB",
    "errors",
    "missing",
)


def _phase_row(label: str, phase: dict[str, Any]) -> str:
    latency = phase["latency_to_112_ms"]
    cells = [
        label,
        _fmt(phase["offered_rate"], 0),
        _fmt(phase["throughput_rps"]),
        _fmt(latency["p50"]),
        _fmt(latency["p95"]),
        _fmt(latency["p99"]),
        _fmt(latency["max"]),
        _fmt(phase["cpu_s_per_1000"], 2),
        _fmt(phase["peak_rss_mb"], 0),
        _fmt(phase["errors"]),
        _fmt(phase["missing_at_112"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _phase_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    head = "| run | " + " | ".join(PHASE_COLUMNS) + " |"
    rule = "|" + "---|" * (len(PHASE_COLUMNS) + 1)
    return [head, rule, *(_phase_row(label, phase) for label, phase in rows)]


def plot_rising(rising: dict[str, Any], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, data in rising.items():
        steps = data["steps"]
        offered = [s["offered_rate"] for s in steps]
        left.plot(offered, [s["throughput_rps"] for s in steps], marker="o", label=name)
        right.plot(
            offered, [s["latency_to_112_ms"]["p99"] or 0 for s in steps], marker="o", label=name
        )
    top = max(s["offered_rate"] for d in rising.values() for s in d["steps"])
    left.plot([0, top], [0, top], linestyle=":", color="grey", label="offered = achieved")
    left.set(xlabel="offered reports/s", ylabel="achieved reports/s", title="throughput")
    right.set(xlabel="offered reports/s", ylabel="p99 POST→112 (ms)", title="p99 latency")
    right.set_yscale("log")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_backlog(backlog: dict[str, Any], path: Path) -> None:
    sample = backlog["order_sample"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter([s[0] for s in sample], [s[1] for s in sample], s=4)
    left.set(
        xlabel="arrival order at 112", ylabel="deadline rank", title="earliest deadline first?"
    )
    right.plot([s[2] for s in sample], [s[0] for s in sample])
    right.set(xlabel="seconds since 112 came back", ylabel="messages received", title="drain")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_memory(memory: dict[str, Any], path: Path) -> None:
    samples = memory["samples"]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot([s[1] for s in samples], [s[2] for s in samples])
    axis.axhline(TARGET_RSS_MB, linestyle=":", color="red", label="200 MB target")
    axis.set(xlabel="reports accepted, waiting for 112", ylabel="gateway RSS (MB)")
    axis.set_ylim(bottom=0)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def describe_setup(setup: dict[str, Any] | None) -> str:
    """How the gateway ran; runs saved before setups were recorded had the default one."""
    setup = setup or {"store": "sqlite", "api_processes": 1, "worker_processes": 0}
    store = (
        "SQLite store in a temporary directory"
        if setup["store"] == "sqlite"
        else "a PostgreSQL database of the run's own on the local server"
    )
    if setup.get("server_autovacuum") is False:
        store += (
            " (the server runs without autovacuum: the run vacuumed and analysed it every "
            f"{VACUUM_EVERY_S:.0f} s)"
        )
    workers = setup["worker_processes"]
    if workers == 0:
        return f"one `gateway serve` process, {store}"
    return (
        f"one `gateway serve --role api` process and {workers} `--role worker` "
        f"process{'es' if workers > 1 else ''}, {store}"
    )


def render(results: dict[str, Any], img_dir: Path, doc_dir: Path) -> str:
    """The page; writes the plots into ``img_dir`` and links them relative to ``doc_dir``."""
    img_dir.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(img_dir.resolve(), doc_dir.resolve()))
    machine = results["machine"]
    lines = [
        "# Performance",
        "",
        "Measured by `python -m bench` (see `bench/__init__.py` and `python -m bench --help`): "
        "`make bench` runs all four scenarios against one all-in-one process on SQLite, "
        "`make bench-scale-out` the rising rate and 50/s against the production shape "
        "(PostgreSQL, one API process, two workers). Everything runs on this one machine "
        "and talks to 127.0.0.1 only: the gateway "
        f"({describe_setup(results.get('setup'))}, its own namespace), the bare baseline and "
        "the minimal outbox gateway (`bench/baseline.py`), the fast 112 receiver "
        "(`bench/receiver.py`) and the load generator are separate processes; RabbitMQ is "
        "the local one.",
        "",
        "How it measures:",
        "",
        "- **Open model.** Reports go out at a constant rate on a schedule fixed in advance, "
        "whatever the answers do. Latency counts from each report's *scheduled* send "
        "time to its arrival at the receiver, so a server that falls behind is charged for "
        "the queueing it causes. Both ends read `time.monotonic_ns()` (Linux "
        "`CLOCK_MONOTONIC`, one clock for every process on the machine).",
        "- **Reports** are the three sample fixtures with a unique `id_laporan`, a kelurahan "
        "drawn from the city's list and varied flags; about 90 % need other agencies and "
        "go to 112 (all of them in the backlogs). They are generated and signed "
        "(Standard Webhooks, with the second each is scheduled in) before the clock starts.",
        "- **Throughput** is reports completed (at 112, or answered for the ones that stay "
        "local) per second from the first scheduled send to the last completion. A step is "
        "*saturated* when it achieves < 90 % of the offered rate, loses a report, errs, or "
        "its p99 passes 1 s; the saturated rate is the best achieved rate of the run.",
        "- **CPU** is the gateway processes' user + system seconds (psutil) over the phase, "
        "per 1 000 accepted reports (a PostgreSQL server's own is given apart); **RSS**, "
        "summed over them, is sampled every 0.2 s (1 s in the 100 000 backlog).",
        "- **Backlogs** are built by posting as fast as the gateway takes them (16 requests "
        "in flight, each signed as it goes) while the receiver answers 503; that build "
        "is not a load model and its latency is not reported.",
        "- **The gateway** runs with its default settings except its namespace, store "
        "path, URLs, secrets, JSON logs at `info`, and the per-source-IP rate limit lifted "
        "(`GATEWAY_RATE_LIMIT_PER_S`/`_BURST`): the load generator is one IP, as Si Lacak "
        "Perak is.",
        "- **Bounded**: every phase has a limit (steps of `--step-seconds`, 15 s to settle, "
        "90 s to go quiet, 600 s to build the 10 000 backlog and 300 s to drain it, "
        "1 800 s to build the 100 000 one), so a run ends, within about two hours at worst; a "
        "full run took 14 minutes on a 2-core VM.",
        "- **Baseline**: an aiohttp handler that publishes each body persistent with "
        "publisher confirms to one durable quorum queue and answers 202, and an aio-pika "
        "consumer (prefetch 32) that POSTs it to the same receiver. No validation, store, "
        "redaction or signing.",
        "- **Minimal outbox gateway** (in runs from 2026-11-30 on; older saved runs lack it): "
        "the same, but the handler first commits the body to an outbox table in a SQLite "
        "file (WAL, `synchronous=FULL`, on the event loop's thread, one transaction per "
        "report, as the gateway's store), wakes its relay and answers 202; the relay "
        "publishes the unpublished rows with confirms and marks them published. The floor "
        "of an outbox design on this machine.",
        "",
        'To run it: `make bench` or `make bench-scale-out` (`CONDITIONS="quiet machine"` '
        "labels the run), or `make bench-smoke` (a few seconds at 20 reports/s). One "
        "scenario: `.venv/bin/python -m bench rising|fixed|backlog|memory "
        "--markdown docs/performance.md`; every limit and rate is a flag (`--help`). "
        "The raw figures of the run below are in `bench/results/latest.json` "
        "(`scale-out.json` for the production shape). "
        "`--profile-gateway FILE` runs the gateway under cProfile and writes its stats "
        "to FILE when it stops (`python -m pstats FILE`).",
        "",
        "## Machine and conditions",
        "",
        "| | |",
        "|---|---|",
        f"| run at | {machine['at']} (took {results.get('wall_s', '–')} s) |",
        f"| CPU | {machine['cpu_model']}, {machine['nproc']} cores (`nproc`) |",
        f"| RAM | {machine['ram_gib']} GiB |",
        f"| Python | {machine['python']} |",
        f"| RabbitMQ | {machine['rabbitmq']} |",
        f"| kernel | {machine['kernel']} |",
        f"| gateway code | {machine.get('git', '–')} |",
        f"| load average (1 min) | {machine['loadavg_1m_at_start']} at start, "
        f"{machine.get('loadavg_1m_at_end', '–')} at end |",
        f"| gateway | {describe_setup(results.get('setup'))} |",
        f"| conditions | {results.get('conditions') or '–'} |",
        "",
        "## Targets (issue 8)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {t} | {m} | {v} |" for t, m, v in targets(results)),
        "",
    ]
    rising = results.get("rising")
    fixed = results.get("fixed")
    if rising or fixed:
        lines += _ratio_section(rising, fixed)
    if rising:
        plot_rising(rising, img_dir / "bench-rising.png")
        steps = [
            (f"{name} {s['offered_rate']:.0f}/s", s)
            for name, d in rising.items()
            for s in d["steps"]
        ]
        lines += [
            "## Rising rate until saturation",
            "",
            f"Each step offers its rate for {rising_step_s(rising)} s. Latency is POST→112.",
            "",
            *_phase_table(steps),
            "",
            f"![throughput and p99 against offered rate]({rel / 'bench-rising.png'})",
            "",
        ]
    if fixed:
        gateway_fixed = fixed["gateway"]
        lines += [
            f"## Fixed {gateway_fixed['offered_rate']:.0f} reports/s "
            f"for {gateway_fixed['seconds']:.0f} s",
            "",
            *_phase_table([(name, phase) for name, phase in fixed.items()]),
            "",
        ]
    backlog = results.get("backlog")
    if backlog:
        plot_backlog(backlog, img_dir / "bench-backlog.png")
        lines += [
            f"## Backlog of {backlog['count']} built while 112 answers 503, then drained",
            "",
            *_pairs(
                ("built at", f"{backlog['build_rate']:.0f} reports/s in {backlog['build_s']} s"),
                ("accepted / errors", f"{backlog['accepted']} / {backlog['errors']}"),
                ("waiting for 112 when it came back", backlog["expected_at_112"]),
                ("503 answers given while down", backlog["refused_while_down"]),
                ("received after it came back", backlog["received_at_112"]),
                ("duplicates at 112", backlog["duplicates_at_112"]),
                ("drain time", f"{backlog['drain_s']} s"),
                ("drain rate (from 112's return to the last message)", backlog["drain_rps"]),
                ("first message after 112's return", f"{_fmt(backlog.get('first_arrival_s'))} s"),
                ("rate once flowing (first to last message)", _fmt(backlog.get("flowing_rps"))),
                ("CPU s per 1 000 while draining", _fmt(backlog.get("drain_cpu_s_per_1000"), 2)),
                (
                    "deadline inversions (0 = earliest deadline first, 0.5 = random)",
                    backlog["deadline_inversion_fraction"],
                ),
            ),
            "",
            f"![arrival against deadline order; drain]({rel / 'bench-backlog.png'})",
            "",
        ]
    memory = results.get("memory")
    if memory:
        plot_memory(memory, img_dir / "bench-memory.png")
        lines += [
            f"## Memory with a backlog of {memory['count']}",
            "",
            "112 answers 503 throughout; the gateway's RSS is sampled every second while the "
            "backlog is posted (as fast as the gateway takes it) "
            "and for 10 s after. The backlog is not drained (that is the "
            "scenario above); the run ends by deleting the namespace.",
            "",
            *_pairs(
                ("built at", f"{memory['build_rate']:.0f} reports/s in {memory['build_s']} s"),
                ("accepted / errors", f"{memory['accepted']} / {memory['errors']}"),
                ("waiting for 112 at the end", memory["waiting_for_112"]),
                ("RSS at start", f"{memory['rss_start_mb']} MB"),
                ("RSS with half the backlog built", f"{_fmt(memory['rss_at_half_mb'])} MB"),
                ("RSS at the end", f"{memory['rss_end_mb']} MB"),
                ("RSS peak", f"{memory['rss_peak_mb']} MB"),
            ),
            "",
            f"![gateway RSS while the backlog builds]({rel / 'bench-memory.png'})",
            "",
        ]
    return "\n".join(lines)


REFERENCES = (("baseline", "bare baseline"), ("outbox-baseline", "minimal outbox"))


def _ratio_section(rising: dict[str, Any] | None, fixed: dict[str, Any] | None) -> list[str]:
    """The gateway's figures beside each reference's in the same run, and their ratios."""
    phases = fixed or {}
    names = [
        (name, label) for name, label in REFERENCES if name in (rising or {}) or name in phases
    ]
    head = "| figure | gateway | " + " | ".join(f"{label} | ratio" for _, label in names) + " |"
    lines = [
        "## The gateway as a ratio of the baselines",
        "",
        "The bare baseline is the floor of any gateway on this broker; the minimal outbox "
        "gateway is the floor of an outbox design (the issue's own yardstick: 'a minimal "
        "outbox gateway with none of the real work').",
        "",
        head,
        "|" + "---|" * (2 + 2 * len(names)),
    ]

    def row(
        figure: str, value: Callable[[str], Any], digits: int = 1, ratio_digits: int = 1
    ) -> None:
        gateway = value("gateway")
        if gateway is None:
            return
        cells = [figure, _fmt(gateway, digits)]
        for name, _ in names:
            reference = value(name)
            ratio = gateway / reference if reference else None
            cells += [_fmt(reference, digits), _fmt(ratio, ratio_digits)]
        lines.append("| " + " | ".join(cells) + " |")

    if rising:
        row(
            "saturated throughput (reports/s)",
            lambda name: rising.get(name, {}).get("saturated_rps"),
            digits=0,
            ratio_digits=2,
        )
    at, source = phases, f"at {phases.get('gateway', {}).get('offered_rate', 0):.0f}/s"
    if not fixed and rising:
        at = _steps_at(rising, TARGET_P99_RATE)
        source = f"rising step at {TARGET_P99_RATE:g}/s"
    for q in ("p50", "p99"):

        def latency(name: str, q: str = q) -> Any:
            return at.get(name, {}).get("latency_to_112_ms", {}).get(q)

        row(f"{q} POST→112 {source} (ms)", latency)
    if fixed:
        row(
            "CPU s per 1 000 reports",
            lambda name: phases.get(name, {}).get("cpu_s_per_1000"),
            digits=2,
        )
        server_cpu = phases["gateway"].get("store_server_cpu_s_per_1000")
        if server_cpu is not None:
            dashes = " | –" * (2 * len(names))
            figure = "PostgreSQL server CPU s per 1 000 reports"
            lines.append(f"| {figure} | {server_cpu:.2f}{dashes} |")
    lines.append("")
    return lines


def _steps_at(rising: dict[str, Any], rate: float) -> dict[str, Any]:
    """Each system's rising-rate step at ``rate``, where it ran one."""
    return {
        name: step
        for name, data in rising.items()
        for step in data["steps"]
        if step["offered_rate"] == rate
    }


def _pairs(*rows: tuple[str, Any]) -> list[str]:
    return ["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def rising_step_s(rising: dict[str, Any]) -> str:
    seconds = {s["seconds"] for d in rising.values() for s in d["steps"]}
    return "/".join(f"{s:g}" for s in sorted(seconds))


def write_report(
    results: dict[str, Any], markdown: Path, img_dir: Path, notes: Path | None = None
) -> None:
    """The page, then the hand-written reading of the figures in ``notes`` if given."""
    markdown.parent.mkdir(parents=True, exist_ok=True)
    text = render(results, img_dir, markdown.parent)
    if notes is not None and notes.exists():
        text += "\n" + notes.read_text()
    markdown.write_text(text.rstrip("\n") + "\n")
