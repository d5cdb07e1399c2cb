"""Site-wide model management: the same model methods the site and the API use."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from webui.jobs.admin import JobAdmin
from webui.lib.numbers import percent_text
from webui.training.artifacts import ArtifactBroken
from webui.training.models import (
    ArtifactInUse,
    FeatureVector,
    ModelVersion,
    ServingEvent,
    TrainingRun,
    VersionExport,
    rollback,
)


@admin.register(TrainingRun)
class TrainingRunAdmin(JobAdmin):
    list_display = ["id", "project", "status", "progress", "message", "created_by", "created", "finished_at"]
    search_fields = ["project__name", "fingerprint", "error"]


@admin.register(VersionExport)
class VersionExportAdmin(JobAdmin):
    """Exports of versions to other formats; deleting one here drops the row, not the stored zip."""

    list_display = ["__str__", "format", "status", "size", "message", "created_by", "created", "finished_at"]
    list_filter = ["status", "format", "created"]
    list_select_related = ["version__project"]
    search_fields = ["version__project__name", "format", "error"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    # "Serving" early: at 1366 px the last columns of a long list scroll out of sight.
    list_display = ["__str__", "serving", "accuracy_shown", "strategy", "backbone", "created"]
    list_filter = ["backbone", "strategy", "created"]
    search_fields = ["project__name", "fingerprint"]
    # The metrics hold every test answer and finding: a summary instead of the raw JSON.
    exclude = ["metrics"]
    readonly_fields = [*(f.name for f in ModelVersion._meta.fields if f.name != "metrics"), "metrics_summary"]
    actions = ["promote", "roll_back", "delete_unserving"]

    def has_add_permission(self, request):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A serving version cannot be deleted (promote another first): do not offer what would fail.
        version = self.get_object(request, object_id)
        extra = {"show_delete": not (version is not None and version.is_serving), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def delete_view(self, request, object_id, extra_context=None):
        version = self.get_object(request, object_id)
        if version is not None and version.is_serving:
            self.message_user(
                request, f"{version} serves predictions: promote another version first, then delete it.",
                messages.ERROR,
            )  # fmt: skip
            return redirect("admin:training_modelversion_change", version.pk)
        return super().delete_view(request, object_id, extra_context)

    @admin.display(description="Score")
    def accuracy_shown(self, obj):
        """Accuracy, or a multi-label version's mean average precision."""
        text = percent_text(obj.score)
        return f"{text} mAP" if obj.multi_label and obj.score is not None else text

    @admin.display(description="Metrics")
    def metrics_summary(self, obj):
        metrics = obj.metrics or {}
        parts = []
        for key, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy")):
            if isinstance(metrics.get(key), int | float):
                parts.append(f"{name} {percent_text(metrics[key])}")
        if obj.images_learned:
            parts.append(f"learned from {obj.images_learned} images, scored on {obj.images_scored or 0}")
        promotion = metrics.get("promotion") or {}
        if promotion.get("reason"):
            parts.append(f"serving decision: {promotion['reason']}")
        return "; ".join(parts) or "—"

    @admin.display(boolean=True, description="Serving")
    def serving(self, obj):
        return obj.project.serving_version_id == obj.pk

    def get_actions(self, request):
        actions = super().get_actions(request)
        # The stock bulk delete bypasses ModelVersion.delete (serving check, artifact removal).
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Promote the selected version to serving", permissions=["change"])
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.WARNING)
            return
        version = queryset.get()
        try:
            version.promote(request.user)
        except ArtifactBroken as exc:
            self.message_user(request, f"Not promoted: {exc}", messages.ERROR)
            return
        self.message_user(request, f"{version} now serves.", messages.SUCCESS)

    @admin.action(
        description="Roll back the selected versions' projects to their previous version",
        permissions=["change"],
    )
    def roll_back(self, request, queryset):
        projects = {v.project_id: v.project for v in queryset.select_related("project")}
        for project in projects.values():
            try:
                target = rollback(project, request.user)
            except (ArtifactInUse, ArtifactBroken) as exc:
                self.message_user(request, f"{project}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"{project}: v{target.number} serves again.", messages.SUCCESS)

    @admin.action(description="Delete the selected versions that do not serve", permissions=["delete"])
    def delete_unserving(self, request, queryset):
        deleted = 0
        for version in queryset.select_related("project"):
            try:
                version.delete()  # its artifact and its loaded model go with it
            except ArtifactInUse as exc:
                self.message_user(request, f"Kept {version}: {exc}", messages.WARNING)
            else:
                deleted += 1
        if deleted:
            self.message_user(request, f"Deleted {deleted} version(s) and their artifacts.", messages.SUCCESS)

    def delete_model(self, request, obj):
        try:
            obj.delete()
        except ArtifactInUse as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset):
        self.delete_unserving(request, queryset)


@admin.register(ServingEvent)
class ServingEventAdmin(admin.ModelAdmin):
    """The audit trail of promotions and rollbacks: read only, and gone only with its project or version."""

    list_display = ["created", "project", "action", "version", "previous", "user"]
    list_filter = ["action", "created"]
    search_fields = ["project__name", "user__username"]
    list_select_related = ["project", "version__project", "previous__project", "user"]
    readonly_fields = [f.name for f in ServingEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Delete permission stays as the user's: the admin checks it for every event a project or
    # version deletion cascades to. Deleting events on their own is closed here instead.
    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied("serving events are an audit trail")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "show_delete": False}
        )


@admin.register(FeatureVector)
class FeatureVectorAdmin(admin.ModelAdmin):
    list_display = ["backbone_id", "sha256", "created"]
    list_filter = ["backbone_id"]
    search_fields = ["sha256"]
    readonly_fields = ["backbone_id", "sha256", "created"]
    exclude = ["vector"]

    def has_add_permission(self, request):
        return False
