"""API tokens in the admin: who has which, when each was used, revoke. Keys cannot be made here: a key is
shown once, to the person who makes it (the API page or `manage.py create_api_token`)."""

from django.contrib import admin, messages
from rest_framework.authtoken.models import TokenProxy

from webui.api.models import ApiToken

# DRF's plain-text tokens are not used (webui/api/auth.py); their admin would only confuse.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "hint", "created", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "created"]
    search_fields = ["name", "user__username", "hint"]
    readonly_fields = ["user", "name", "hint", "created", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            token.revoke()
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)
