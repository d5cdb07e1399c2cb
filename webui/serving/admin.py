from django.contrib import admin, messages

from webui.serving.models import ShareLink


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "version", "enabled", "expires_at", "created_by", "created"]
    list_filter = ["enabled", "created"]
    search_fields = ["project__name", "token_hint"]
    readonly_fields = ["project", "token_hash", "token_hint", "created_by", "created", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A link's token is shown once, to its creator, on the project's share page.
        return False

    @admin.action(description="Revoke the selected links", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for link in queryset.filter(enabled=True):
            link.revoke()
            count += 1
        self.message_user(request, f"Revoked {count} link(s).", messages.SUCCESS)
