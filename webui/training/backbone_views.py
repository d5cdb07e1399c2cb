"""The backbones page: which pretrained networks this server can train with, and how to add the others."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET


@login_required
@require_GET
def backbones(request):
    from classifier.backbones import list_backbones, torch_hub_dir

    rows = list_backbones()
    context = {
        "backbones": rows,
        "usable": sum(1 for row in rows if row["usable"]),
        # Where files go on this host is the server's business: administrators see it, members are
        # told whom to ask.
        "hub_dir": torch_hub_dir() / "checkpoints" if request.user.is_staff else None,
    }
    return render(request, "training/backbones.html", context)
