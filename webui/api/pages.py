"""The signed-in person's API tokens page: make a named token (its key shown once), see when each was
last used, revoke one."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from webui.api.models import ApiToken


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="What is it for?",
        widget=forms.TextInput(attrs={"placeholder": "e.g. nightly import"}),
    )


@never_cache  # the page that shows a new key must not be kept by a browser or a proxy
@login_required
def tokens(request):
    new_key = None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _token, new_key = ApiToken.create_for(request.user, form.cleaned_data["name"])
        form = TokenForm()
    context = {
        "form": form,
        "new_key": new_key,
        "tokens": request.user.api_tokens.all(),
        "api_root": request.build_absolute_uri("/api/v1/"),
    }
    return render(request, "api/tokens.html", context, status=201 if new_key else 200)


@login_required
@require_POST
def revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)  # someone else's: 404
    token.revoke()
    messages.success(request, f"Revoked “{token.name}”: scripts using it now get 401.")
    return redirect("api-tokens")
