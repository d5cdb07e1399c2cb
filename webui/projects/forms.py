import re

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from webui.projects.models import Label, Project, TaskType


class ProjectForm(forms.ModelForm):
    labels = forms.CharField(
        required=False,
        help_text="Optional: the answers you want, separated by commas (for example: ants, bees).",
        widget=forms.TextInput(attrs={"placeholder": "ants, bees"}),
    )

    class Meta:
        model = Project
        fields = ["name", "description", "task_type"]
        labels = {"task_type": "Each picture gets"}
        help_texts = {
            "task_type": "One label: ants or bees? Any of the labels: which of these things are in the picture "
            "(several, or none)? Chosen now; it cannot change later."
        }
        widgets = {
            "task_type": forms.RadioSelect,
            "name": forms.TextInput(attrs={"placeholder": "Ants or bees?", "autofocus": True}),
            "description": forms.Textarea(
                attrs={"rows": 2, "placeholder": "What should the model tell apart?"}
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task_type"].required = False  # one label per picture unless chosen otherwise
        self.fields["task_type"].initial = TaskType.SINGLE_LABEL

    def clean_task_type(self) -> str:
        return self.cleaned_data.get("task_type") or TaskType.SINGLE_LABEL

    def clean_labels(self) -> list[str]:
        names: list[str] = []
        for raw in self.cleaned_data["labels"].split(","):
            name = raw.strip()
            if not name:
                continue
            if len(name) > 100:
                raise forms.ValidationError(
                    f"Label names are at most 100 characters; '{name[:20]}…' is longer."
                )
            if name.lower() in {n.lower() for n in names}:
                raise forms.ValidationError(f"The label '{name}' is listed twice.")
            names.append(name)
        return names


class LabelForm(forms.ModelForm):
    """Add or change a label; names stay unique in the project, ignoring case."""

    class Meta:
        model = Label
        fields = ["name", "colour"]
        widgets = {"colour": forms.TextInput(attrs={"type": "color"})}

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["colour"].required = False

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A label needs a name.")
        taken = self.project.labels.filter(name__iexact=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"There is already a label called '{name}'.")
        return name

    def clean_colour(self) -> str:
        colour = (self.cleaned_data.get("colour") or "").strip()
        if not colour:
            return self.instance.colour if self.instance.pk else "#2563eb"
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
            raise forms.ValidationError("Pick a colour like #2563eb.")
        return colour.lower()


class AcceptSuggestionsForm(forms.Form):
    threshold = forms.IntegerField(min_value=50, max_value=100, initial=90, label="Confidence at least (%)")


class ProjectSettingsForm(forms.ModelForm):
    """What editors may change about a project; the backbone list is the usable registry entries."""

    class Meta:
        model = Project
        fields = [
            "name",
            "description",
            "backbone",
            "auto_promote",
            "keep_member_photos",
            "keep_share_photos",
            "keep_photos_days",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "keep_photos_days": forms.NumberInput(attrs={"min": 1, "max": 3650, "class": "input-narrow"}),
        }
        labels = {
            "auto_promote": "Serve a new version automatically when it does at least as well",
            "keep_member_photos": "Keep photos members ask about (Try it, API) when the model is unsure, for review",
            "keep_share_photos": "Keep photos share-page visitors ask about when the model is unsure, for review",
            "keep_photos_days": "Remove kept photos nobody reviewed after (days)",
        }
        # The model's help text ("when it beats the serving one") contradicted the label: a tie promotes.
        help_texts = {
            "auto_promote": "Both versions are scored on the test pictures they share; on a tie the new one "
            "serves, since it learned from at least as many pictures.",
            "keep_share_photos": "Off: a visitor's photo is kept only when they choose “Not right?” and send "
            "it. Tell your visitors if you turn this on.",
        }

    def clean_keep_photos_days(self):
        """Left empty (or missing from an older form): keep what it was."""
        value = self.cleaned_data.get("keep_photos_days")
        return self.instance.keep_photos_days if value is None else value

    def __init__(self, *args, **kwargs):
        from classifier.backbones import list_backbones

        super().__init__(*args, **kwargs)
        days = self.fields["keep_photos_days"]
        days.min_value, days.max_value, days.required = 1, 3650, False
        days.validators += [MinValueValidator(1), MaxValueValidator(3650)]
        usable = [b for b in list_backbones() if b["usable"] or b["name"] == self.instance.backbone]
        # Names only: with the notes, the options were cut off on a phone. The notes are in the help.
        self.fields["backbone"] = forms.ChoiceField(
            choices=[(b["name"], b["name"] + (" (default)" if b.get("default") else "")) for b in usable],
            help_text="The pretrained network for the next training; earlier versions keep theirs. "
            + " ".join(f"{b['name']}: {b['notes'].rstrip('.')}." for b in usable),
        )


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(
        choices=[("editor", "Editor: uploads, labels, trains"), ("viewer", "Viewer: looks")]
    )
