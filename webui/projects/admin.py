"""Site-wide project management: deletes and relabels go through the same services as the site."""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import NestedObjects
from django.db import router
from django.db.models import Count

from webui.jobs.admin import JobAdmin
from webui.projects.images import delete_image, delete_project
from webui.projects.imports import cancel_import
from webui.projects.labels import set_label, set_labels
from webui.projects.models import Image, Label, Membership, Project, ZipImport


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    fields = ["name", "colour", "order"]


def _backbone_choices():
    from classifier.backbones import BACKBONES

    return [(name, name) for name in BACKBONES]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name", "owner", "task_type", "backbone", "image_count", "serving_version", "auto_promote", "created"
    ]  # fmt: skip
    list_filter = ["task_type", "backbone", "auto_promote", "created"]
    search_fields = ["name", "owner__username", "owner__email"]
    autocomplete_fields = ["owner"]
    # Only ModelVersion.promote() may move the pointer (artifact check, ServingEvent, same project):
    # the version admin's "promote" and "roll back" actions.
    readonly_fields = ["serving_version", "created", "updated"]
    inlines = [MembershipInline, LabelInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_images=Count("images", distinct=True))

    def get_readonly_fields(self, request, obj=None):
        # A project's task type is chosen when it is made: its labels and versions depend on it.
        return [*self.readonly_fields, "task_type"] if obj else self.readonly_fields

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "backbone":
            # Picked from the registry, as on the site's settings page: a typo would only surface at
            # the next training.
            return forms.ChoiceField(choices=_backbone_choices, help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Images", ordering="_images")
    def image_count(self, obj):
        return obj._images

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            # The serving pointer PROTECTs a project's own version, which delete_project releases
            # first; anything else that protects (another project's pointer) still blocks.
            projects = list(objs)
            ids = {project.pk for project in projects}
            collector = NestedObjects(using=router.db_for_write(Project))
            collector.collect(projects)
            if all(isinstance(o, Project) and o.pk in ids for o in collector.protected):
                protected = []
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        delete_project(obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            delete_project(project)


class ImageForm(forms.ModelForm):
    class Meta:
        model = Image
        fields = ["original_name", "label", "labels", "split"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        own = Label.objects.filter(project_id=self.instance.project_id)
        for name in ("label", "labels"):
            if name in self.fields:
                # An image can only carry its own project's labels.
                self.fields[name].queryset = own


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    form = ImageForm
    list_display = [
        "id",
        "original_name",
        "project",
        "label_text",
        "format",
        "width",
        "height",
        "split",
        "created",
    ]
    list_filter = ["format", "split", "project"]
    search_fields = ["original_name", "sha256", "project__name"]
    list_select_related = ["project", "label"]
    readonly_fields = [
        "project",
        "file",
        "sha256",
        "width",
        "height",
        "format",
        "size",
        "created",
        "uploaded_by",
        "labeled_at",
    ]

    def has_add_permission(self, request):
        # Images come in through the upload services (validated, deduplicated, re-keyed).
        return False

    def get_fields(self, request, obj=None):
        # A single-label project's image has one `label`; a multi-label one's a set of `labels`.
        unused = "label" if obj is not None and obj.project.multi_label else "labels"
        return [name for name in super().get_fields(request, obj) if name != unused]

    @admin.display(description="Labels")
    def label_text(self, obj):
        if obj.project.multi_label:
            names = [label.name for label in obj.labels.all()]
            return ", ".join(names) if names else ("none of these" if obj.labeled_at else "—")
        return obj.label.name if obj.label_id else "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("labels")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "label" in form.changed_data:
            set_label(Image.objects.filter(pk=obj.pk), obj.label)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if "labels" in form.changed_data:  # a person gave the set: labelled, even when empty
            set_labels(Image.objects.filter(pk=form.instance.pk), list(form.instance.labels.all()))

    def delete_model(self, request, obj):
        delete_image(obj)

    def delete_queryset(self, request, queryset):
        for image in queryset:
            delete_image(image)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "colour", "order"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a label would leave its images labelled with another project's class.
        return ["project"] if obj else []


@admin.register(ZipImport)
class ZipImportAdmin(JobAdmin):
    cancel_job = staticmethod(cancel_import)
    list_display = ["__str__", "project", "status", "processed", "entries", "created_count", "created"]
    search_fields = ["project__name", "name", "error"]
