from django import forms

from webui.projects.models import Project


class ProjectForm(forms.ModelForm):
    labels = forms.CharField(
        required=False,
        help_text="Optional: the answers you want, separated by commas (for example: ants, bees).",
    )

    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

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
