from django.contrib import admin
from django.db.models import Count

from webui.projects.models import Image, Label, Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    fields = ["name", "colour", "order"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "backbone", "image_count", "serving_version", "auto_promote", "created"]
    list_filter = ["backbone", "auto_promote", "created"]
    search_fields = ["name", "owner__username", "owner__email"]
    autocomplete_fields = ["owner"]
    raw_id_fields = ["serving_version"]
    readonly_fields = ["created", "updated"]
    inlines = [MembershipInline, LabelInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_images=Count("images", distinct=True))

    @admin.display(description="Images", ordering="_images")
    def image_count(self, obj):
        return obj._images


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "project",
        "label",
        "format",
        "width",
        "height",
        "split",
        "created",
    ]
    list_filter = ["format", "split", "project"]
    search_fields = ["original_name", "sha256", "project__name"]
    raw_id_fields = ["project", "label", "uploaded_by"]
    readonly_fields = ["file", "sha256", "width", "height", "format", "size", "created", "uploaded_by"]


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "colour", "order"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project"]
