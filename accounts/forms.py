from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import Address, HostProfile, User


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional. For order updates.")
    display_name = forms.CharField(
        max_length=40, required=False, help_text="Shown in chat. Defaults to your username."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "display_name", "email")


class AddressForm(forms.ModelForm):
    make_default = forms.BooleanField(required=False, label="Use as my default address")

    class Meta:
        model = Address
        fields = ("recipient", "phone", "province", "city", "district", "line", "postal_code")
        widgets = {
            "phone": forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
            "recipient": forms.TextInput(attrs={"autocomplete": "name"}),
            "postal_code": forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "postal-code"}),
            "line": forms.TextInput(attrs={"autocomplete": "street-address"}),
        }


class HostApplicationForm(forms.ModelForm):
    class Meta:
        model = HostProfile
        fields = ("handle", "bio")
        widgets = {"bio": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"bio": "One or two lines viewers see on your rooms."}
