"""``mosaic doctor``: print `mosaic_storage.detect_tier`'s report as a table or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import mosaic_storage as ms

from ._output import EXIT_FAILURE, console, handle_errors, print_json

_STATUS_STYLE = {
    ms.ProbeStatus.OK: "bold green",
    ms.ProbeStatus.WARN: "bold yellow",
    ms.ProbeStatus.FAIL: "bold red",
    ms.ProbeStatus.SKIPPED: "dim",
}


@handle_errors
def doctor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Path to mosaic.config.json (default: searched for)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=600,
            help="Seconds each connect may take (default: storage.connect_timeout, 5).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON for scripts.")] = False,
) -> None:
    """Check that every service the configured tier needs is there; exit 1 when the tier cannot run."""
    report = ms.detect_tier(ms.load_config(config), timeout=timeout)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_table(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _print_table(report: ms.TierReport) -> None:
    # Probe texts come from servers and config: shown as text, never parsed as rich markup.
    table = Table(title=escape(f"{report.tier.value} tier: {report.storage_url}"), title_justify="left")
    for column in ("service", "status", "latency", "version", "found", "to do"):
        table.add_column(column, overflow="fold")
    for probe in report.probes:
        latency = "" if probe.latency_ms is None else f"{probe.latency_ms:.0f} ms"
        table.add_row(
            escape(probe.service),
            f"[{_STATUS_STYLE[probe.status]}]{probe.status.value}[/]",
            latency,
            escape(probe.version or ""),
            escape(probe.error or probe.detail or ""),
            escape(probe.remediation or ""),
        )
    console.print(table, highlight=False)
    if report.ok:
        console.print(f"[bold green]The {report.tier.value} tier can run.[/]", highlight=False)
    else:
        failed = ", ".join(probe.service for probe in report.failures)
        console.print(
            f"[bold red]The {report.tier.value} tier cannot run:[/] fix {failed} (see 'to do').",
            highlight=False,
        )
