"""One admin shape for every kind of job: read only (a worker writes them), with a cancel action."""

from __future__ import annotations

from django.contrib import admin, messages

from webui.jobs import lifecycle
from webui.jobs.models import InvalidTransition

JOB_FIELDS = ["status", "progress", "message", "error", "attempts", "created_by", "created", "started_at",
              "heartbeat_at", "finished_at"]  # fmt: skip


class JobAdmin(admin.ModelAdmin):
    """Subclasses add their own columns in front of the job's."""

    list_display = ["__str__", "project", "status", "progress", "message", "created", "finished_at"]
    list_filter = ["status", "created"]
    search_fields = ["project__name", "message", "error"]
    list_select_related = ["project"]
    actions = ["cancel"]
    # How this kind of job is cancelled (a zip import also removes a queued archive).
    cancel_job = staticmethod(lifecycle.cancel)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name not in (self.exclude or ())]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request) -> bool:
        """Whoever may change this kind of row (the admin's change form itself stays read only)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Cancel (a running one stops at its next step)", permissions=["cancel"])
    def cancel(self, request, queryset):
        done = 0
        for job in queryset:
            try:
                self.cancel_job(job)
                done += 1
            except InvalidTransition:
                continue
        self.message_user(request, f"Cancelled or asked to stop: {done}.", messages.SUCCESS)
