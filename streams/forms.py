from django import forms
from django.utils import timezone

from streams.models import Room


class RoomForm(forms.ModelForm):
    scheduled_start = forms.DateTimeField(
        label="Start time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    class Meta:
        model = Room
        fields = ["title", "description", "cover", "scheduled_start"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"cover": "A portrait image (3:4) looks best on the home page."}

    def clean_scheduled_start(self):
        value = self.cleaned_data["scheduled_start"]
        if self.instance.pk is None and value < timezone.now() - timezone.timedelta(minutes=5):
            raise forms.ValidationError("Pick a time in the future.")
        return value

    def clean_cover(self):
        cover = self.cleaned_data.get("cover")
        if cover and hasattr(cover, "size") and cover.size > 5 * 1024 * 1024:
            raise forms.ValidationError("Cover images can be up to 5 MB.")
        return cover
