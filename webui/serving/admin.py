"""Share links, batch predictions and recorded answers in the admin, revoked the same way as on the site."""

from django.contrib import admin, messages

from webui.jobs.admin import JobAdmin
from webui.serving.models import BatchPrediction, PredictionRecord, ShareLink, SuggestionRefresh
from webui.serving.services import revoke_link


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "version", "enabled", "expires_at", "created_by", "created"]
    list_filter = ["enabled", "created"]
    search_fields = ["project__name", "token_hint"]
    # Revoking is one way (the "revoke" action); a pinned version stays the one its creator chose.
    readonly_fields = [
        "project",
        "version",
        "enabled",
        "token_hash",
        "token_hint",
        "created_by",
        "created",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A link's token is shown once, to its creator, on the project's share page.
        return False

    @admin.action(description="Revoke the selected links", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        # The site's own revoke (the link, then its loaded model), so the two cannot drift apart.
        for link in queryset.filter(enabled=True).select_related("project"):
            revoke_link(link)
            count += 1
        self.message_user(request, f"Revoked {count} link(s).", messages.SUCCESS)


@admin.register(BatchPrediction)
class BatchPredictionAdmin(JobAdmin):
    """Deleting an old one only drops its results."""

    list_display = ["__str__", "project", "version", "scope", "status", "progress", "created", "finished_at"]
    list_filter = ["status", "scope", "created"]
    list_select_related = ["project", "version__project"]
    # Results can hold thousands of rows; the count is enough here.
    exclude = ["results"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "result_count"]

    @admin.display(description="Results")
    def result_count(self, obj):
        return len(obj.results or [])


@admin.register(SuggestionRefresh)
class SuggestionRefreshAdmin(JobAdmin):
    list_select_related = ["project", "version__project"]


@admin.register(PredictionRecord)
class PredictionRecordAdmin(admin.ModelAdmin):
    """Answers as they were given: read only. Reviewing is the project's Review page's job."""

    list_display = ["created", "project", "version_number", "source", "label", "probability", "review"]
    list_filter = ["source", "review", "reason", "unknown", "created"]
    search_fields = ["project__name", "label", "visitor_label"]
    date_hierarchy = "created"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in PredictionRecord._meta.fields]

    def has_add_permission(self, request):
        return False
