"""The version page's exports: every format with its state, a button to make one, a link to download it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from webui.jobs.models import LIVE_STATES
from webui.projects.access import get_project_for_user
from webui.training.exports import ExportRefused, formats, start_export
from webui.training.models import ModelVersion
from webui.training.views import is_htmx, version_or_404


def export_rows(version: ModelVersion) -> list[dict]:
    """One row per format: what it is for, and its latest export (None where none was asked for)."""
    latest: dict[str, object] = {}
    for export in version.exports.order_by("created"):
        latest[export.format] = export
    rows = []
    for row in formats():
        export = latest.get(row["format"])
        rows.append(
            {
                **row,
                "export": export,
                "live": export is not None and export.status in LIVE_STATES,
                "checked_text": checked_text(export.parity if export is not None else {}),
            }
        )
    return rows


def checked_text(parity: dict) -> str:
    """How a finished export's answers compared with the version's, in words ("" before a check)."""
    if not parity.get("pictures"):
        return ""
    difference = float(parity["max_difference"])
    close = (
        "the same probabilities to 4 decimals"
        if difference < 5e-5
        else f"probabilities within {difference:.2g}"
    )
    text = f"same label on {parity['top_agreement']:.0%} of {parity['pictures']} photos, {close}"
    if parity.get("method") != "answers":
        text += " (checked as converted: it cannot run on this server)"
    return text


def exports_context(project, version: ModelVersion, user) -> dict:
    rows = export_rows(version)
    return {
        "project": project,
        "version": version,
        "export_rows": rows,
        "exports_live": any(r["live"] for r in rows),
        "can_export": project.can_edit(user),
    }


@login_required
@require_http_methods(["GET", "POST"])
def exports(request, project_id: int, number: int):
    """GET: the exports card (the page polls it while one is being made). POST: make an export."""
    # Members see the exports and download them; making one asks a worker for minutes of work, which
    # is for the project's owner and editors.
    project = get_project_for_user(request.user, project_id, write=request.method == "POST")
    version = version_or_404(project, number)
    if request.method == "POST":
        try:
            export, created = start_export(version, request.POST.get("format", ""), request.user)
        except ExportRefused as exc:
            messages.error(request, str(exc))
        else:
            if not created and not is_htmx(request):
                messages.info(
                    request, f"The {export.format} export was already {export.get_status_display().lower()}."
                )
        if not is_htmx(request):
            return redirect(f"{reverse('training:version', args=[project.pk, version.number])}#exports")
    return render(request, "training/_exports.html", exports_context(project, version, request.user))
