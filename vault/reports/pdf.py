"""The shift report as a PDF (fpdf2, built-in fonts): what the officer prints and signs."""

from __future__ import annotations

from typing import Any

from vault.local_time import local_text
from vault.reports.models import ShiftReport


def _latin1(text: Any) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def report_pdf(report: ShiftReport) -> bytes:
    """The report as a PDF (fpdf2, built-in fonts)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(f"Shift report {report.recording}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(
        0, 10, _latin1(f"Officer's report - {report.recording}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", "", 10)
    rows = [
        ("Municipality", report.recording.municipality.name),
        ("Officer", report.officer.name if report.officer else "-"),
        ("Camera", report.recording.device_id),
        ("Record pressed", local_text(report.pressed_at, "second")),
        ("Stopped", local_text(report.stopped_at, "second") or "-"),
        ("Pre-roll", f"{report.preroll_seconds:.1f} s"),
        (
            "Indicators",
            "; ".join(f"{i.get('indicator')} ({i.get('reason')})" for i in report.indicators)
            or "-",
        ),
        ("Event log", "verified" if report.events_verified else "not verified"),
        ("Reason and circumstances", report.reason or "-"),
        ("Warning given", {True: "yes", False: "no", None: "-"}[report.warning_given]),
        ("Warning note", report.warning_note or "-"),
        ("Bystanders informed", report.bystanders_informed or "-"),
        (
            "State",
            report.state
            + (
                f" on {local_text(report.submitted_at)} by {report.submitted_by}"
                if report.submitted_at
                else ""
            ),
        ),
    ]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(55, 7, _latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 7, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
