"""What the API reads and writes. Output serializers are read-only views of the models; input
serializers validate, and the views hand the cleaned values to the domain services."""

from __future__ import annotations

import re

from django.db import models
from django.db.models import Case, CharField, Count, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.strategies import STRATEGY_CHOICES
from webui.projects.models import Image, Label, Membership, Project, Role, SplitHint, TaskType
from webui.training.models import ModelVersion, TrainingRun

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def escaped_name(name: str, limit: int = 255) -> str:
    """A client-sent file name as inert text: control and bidi characters spelled out, length bounded."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in name)
    return text[-limit:]


class StrictCharField(serializers.CharField):
    """Text that must arrive as text: DRF's CharField quietly turns 0 into "0" and true into "True", so a
    client's mistake would become a label called "0" instead of a 400 that says what is wrong."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A number that must arrive as a number: DRF's FloatField takes true as 1.0 and "0.8" as 0.8."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose text columns are StrictCharFields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


def validate_backbone_name(value: str) -> str:
    from classifier.backbones import BACKBONES

    if value not in BACKBONES:
        raise serializers.ValidationError(f"unknown backbone {value!r}; choose one of {', '.join(BACKBONES)}")
    return value


# --- projects -------------------------------------------------------------------------------------


def with_stats(queryset, user):
    """Projects annotated with the caller's role and their image and label counts, in one query.

    The counts are subqueries (joining both tables would count images x labels rows), and the serving
    version comes without its metrics JSON (every finding and test answer: decoding it cost more than
    the rest of the request for a project of a few hundred photos).
    """
    member_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]

    def count(model):
        rows = model.objects.filter(project=OuterRef("pk")).order_by().values("project")
        return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0)

    return (
        queryset.select_related("serving_version")
        .defer("serving_version__metrics")
        .annotate(
            caller_role=Case(
                When(owner=user, then=Value(Role.OWNER.value)),
                default=Subquery(member_role),
                output_field=CharField(),
            ),
            n_images=count(Image),
            n_labels=count(Label),
        )
    )


class ProjectSerializer(StrictModelSerializer):
    role = serializers.ChoiceField(choices=Role.choices, source="caller_role", read_only=True)
    serving_version = serializers.IntegerField(
        source="serving_version.number", read_only=True, allow_null=True, default=None
    )
    serving_version_id = serializers.IntegerField(read_only=True, allow_null=True)
    image_count = serializers.IntegerField(source="n_images", read_only=True)
    label_count = serializers.IntegerField(source="n_labels", read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "task_type",
            "backbone",
            "auto_promote",
            "role",
            "serving_version",
            "serving_version_id",
            "image_count",
            "label_count",
            "created",
        ]
        read_only_fields = fields


class ProjectCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, default="")
    backbone = StrictCharField(required=False, validators=[validate_backbone_name])
    auto_promote = serializers.BooleanField(required=False)
    labels = serializers.ListField(
        child=StrictCharField(max_length=100), required=False, default=list, max_length=100
    )
    task_type = serializers.ChoiceField(
        choices=TaskType.choices,
        required=False,
        help_text="single_label (the default): one label per picture; multi_label: any of the labels, or none",
    )


class ProjectUpdateSerializer(StrictModelSerializer):
    backbone = StrictCharField(max_length=64, validators=[validate_backbone_name])

    class Meta:
        model = Project
        fields = ["name", "description", "backbone", "auto_promote"]


# --- labels ---------------------------------------------------------------------------------------


class LabelSerializer(StrictModelSerializer):
    """Read and write a label; the view passes the project in the context for the uniqueness check."""

    colour = StrictCharField(required=False, help_text="#rrggbb; picked from a palette when omitted")
    order = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    image_count = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = ["id", "name", "colour", "order", "image_count", "created"]
        read_only_fields = ["id", "image_count", "created"]

    @extend_schema_field(serializers.IntegerField())
    def get_image_count(self, label) -> int:
        annotated = getattr(label, "n_images", None)
        return annotated if annotated is not None else label.images.count()

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("a label needs a name")
        project = self.context["project"]
        clash = project.labels.filter(name__iexact=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"this project already has a label named {value!r}")
        return value

    def validate_colour(self, value: str) -> str:
        if not COLOUR.match(value):
            raise serializers.ValidationError("colour must look like #rrggbb, e.g. #2563eb")
        return value.lower()


# --- images ---------------------------------------------------------------------------------------


class ImageSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="label.name", read_only=True, allow_null=True, default=None)
    label_id = serializers.IntegerField(read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField(
        help_text="the labels in the picture (multi-label projects; single-label: its label, if any); "
        "null while it is unlabelled, [] when a person said it has none of them"
    )
    labelled = serializers.SerializerMethodField()

    def get_labels(self, image) -> list[str] | None:
        if not image.is_labelled:
            return None
        if image.project.multi_label:
            return [label.name for label in image.labels.all()]
        return [image.label.name] if image.label_id else []

    def get_labelled(self, image) -> bool:
        return image.is_labelled

    class Meta:
        model = Image
        fields = [
            "id",
            "original_name",
            "sha256",
            "width",
            "height",
            "format",
            "size",
            "label",
            "label_id",
            "labels",
            "labelled",
            "split",
            "created",
        ]
        read_only_fields = fields


class UploadedImageSerializer(ImageSerializer):
    duplicate = serializers.BooleanField(read_only=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "duplicate"]
        read_only_fields = fields


class UploadSerializer(serializers.Serializer):
    """Multipart form: the files and an optional label for them (schema only; the view reads FILES)."""

    files = serializers.ListField(child=serializers.FileField())
    label = StrictCharField(required=False, max_length=100)
    labels = serializers.ListField(
        child=StrictCharField(max_length=100),
        required=False,
        help_text="multi-label projects: the labels in every file sent (repeat the field); created if missing",
    )


class RejectedSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="position of the file in the request's `files`")
    name = serializers.CharField()
    error = serializers.CharField()


class UploadResultSerializer(serializers.Serializer):
    images = UploadedImageSerializer(many=True)
    rejected = RejectedSerializer(many=True)


class ImageUpdateSerializer(serializers.Serializer):
    label = StrictCharField(max_length=100, allow_null=True, required=False)
    labels = serializers.ListField(
        child=StrictCharField(max_length=100),
        allow_null=True,
        required=False,
        max_length=100,
        help_text="multi-label projects: exactly the labels in the picture ([]: none of them; null: unlabelled)",
    )
    split = serializers.ChoiceField(choices=SplitHint.choices, required=False)


# --- training -------------------------------------------------------------------------------------


class TrainSerializer(serializers.Serializer):
    backbone = StrictCharField(required=False, max_length=64)
    strategy = serializers.ChoiceField(choices=STRATEGY_CHOICES, required=False)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class RunSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id", read_only=True)
    model_version = serializers.SerializerMethodField()
    model_version_id = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project",
            "status",
            "progress",
            "message",
            "params",
            "metrics",
            "model_version",
            "model_version_id",
            "error",
            "created",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @staticmethod
    def _version(run) -> ModelVersion | None:
        try:
            return run.model_version
        except ModelVersion.DoesNotExist:
            return None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_model_version(self, run) -> int | None:
        version = self._version(run)
        return version.number if version else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_model_version_id(self, run) -> int | None:
        version = self._version(run)
        return version.pk if version else None


class TrainedRunSerializer(RunSerializer):
    reused = serializers.BooleanField(read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "reused"]
        read_only_fields = fields


class VersionSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id", read_only=True)
    serving = serializers.SerializerMethodField()
    labels = serializers.ListField(child=serializers.CharField(), read_only=True)
    metrics = serializers.DictField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "number",
            "project",
            "backbone",
            "strategy",
            "labels",
            "metrics",
            "serving",
            "created",
            "size",
            "answer_threshold",
            "label_thresholds",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_serving(self, version) -> bool:
        serving_id = self.context.get("serving_id", None)
        if "serving_id" not in self.context:
            serving_id = version.project.serving_version_id
        return version.pk == serving_id


class ThresholdSerializer(serializers.Serializer):
    threshold = StrictFloatField(
        allow_null=True,
        required=False,
        min_value=0,
        max_value=0.99,
        help_text="single-label versions: answer only when at least this sure (0 to 0.99); null answers always",
    )
    thresholds = serializers.DictField(
        child=StrictFloatField(allow_null=True, min_value=0, max_value=0.99),
        required=False,
        allow_empty=False,
        help_text="multi-label versions: {label: threshold}, a label present at or above it; "
        "null puts a label back to the threshold training chose",
    )

    def validate(self, attrs):
        if ("threshold" in attrs) == ("thresholds" in attrs):
            raise serializers.ValidationError("send threshold (single-label) or thresholds (multi-label)")
        return attrs


# --- predictions ----------------------------------------------------------------------------------


class PredictOptionsSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="a version id; default: serving"
    )
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=100, default=5)


class PredictRequestSerializer(PredictOptionsSerializer):
    file = serializers.FileField()


class ScoreSerializer(serializers.Serializer):
    label = serializers.CharField()
    probability = serializers.FloatField()


class LabelAnswerSerializer(ScoreSerializer):
    present = serializers.BooleanField(help_text="at or above the label's threshold")


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the likeliest label (multi-label: present or not; see labels)")
    probability = serializers.FloatField()
    top = ScoreSerializer(many=True)
    unknown = serializers.BooleanField()
    unknown_score = serializers.FloatField()
    sure = serializers.BooleanField(
        help_text="false when `probability` is below the version's threshold: treat the answer as 'not sure' "
        "(multi-label: when a label is close to its threshold)"
    )
    threshold = serializers.FloatField(
        allow_null=True,
        help_text="the version answers only when at least this sure; null: always (and for multi-label versions)",
    )
    labels = LabelAnswerSerializer(
        many=True,
        required=False,
        help_text="multi-label versions only: every label, in the version's order, and whether it is in the picture",
    )
    model_version = serializers.IntegerField()
    model_version_id = serializers.IntegerField()


class BackboneImageSerializer(serializers.Serializer):
    file = serializers.FileField()
    backbone = StrictCharField(required=False, max_length=64)


class FeaturesSerializer(serializers.Serializer):
    backbone = serializers.CharField()
    dim = serializers.IntegerField()
    vector = serializers.ListField(child=serializers.FloatField())


class RecognitionSerializer(serializers.Serializer):
    backbone = serializers.CharField()
    top = ScoreSerializer(many=True)


class BatchRequestSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["unlabeled", "all"], default="unlabeled")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="a version id; default: serving"
    )


class BatchResultSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    label = serializers.CharField(required=False)
    probability = serializers.FloatField(required=False)
    unknown = serializers.BooleanField(required=False)
    sure = serializers.BooleanField(required=False, help_text="false below the version's threshold")
    error = serializers.CharField(required=False)


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    model_version = serializers.IntegerField(source="version.number")
    model_version_id = serializers.IntegerField(source="version_id")
    scope = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    results = BatchResultSerializer(many=True)
    error = serializers.CharField()
    created = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="onnx, onnx-int8, openvino, tflite or coreml")


class ExportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_version_id = serializers.IntegerField(source="version_id")
    format = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    size = serializers.IntegerField(help_text="bytes of the zip, once it succeeded")
    parity = serializers.JSONField(
        help_text="how its answers compared with the version's: pictures, top_agreement, max_difference, "
        "tolerance, method, passed"
    )
    download = serializers.SerializerMethodField()
    created = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_download(self, obj) -> str | None:
        if obj.status != "succeeded" or not obj.file:
            return None
        return f"/api/v1/versions/{obj.version_id}/exports/{obj.pk}/download/"
