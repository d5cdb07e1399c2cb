from django.contrib import admin
from django.db import connection
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from webui.api import pages as api_pages
from webui.ratelimit.signin import SignInView, admin_login
from webui.training import backbone_views


def healthz(request):
    """Liveness for load balancers: the process answers and the database is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: send them to the real icon, not a 404.
    (Resolved per request: the static manifest may not exist yet when the URLs are imported.)"""
    return HttpResponsePermanentRedirect(static("pinhole/favicon.svg"))


# The admin signs in through the site's sign-in page, which limits wrong passwords (set before
# admin.site.urls is read below: it binds the view).
admin.site.login = admin_login

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False)),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("accounts/tokens/", api_pages.tokens, name="api-tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", api_pages.revoke, name="api-token-revoke"),
    path("admin/", admin.site.urls),
    path("backbones/", backbone_views.backbones, name="backbones"),
    path("projects/", include("webui.projects.urls")),
    path("projects/<int:project_id>/", include("webui.training.urls")),
    path("", include("webui.serving.urls")),
    path("api/v1/", include("webui.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon),
]

admin.site.site_header = "Pinhole administration"
admin.site.site_title = "Pinhole admin"

handler404 = "webui.api.errors.not_found"
handler500 = "webui.api.errors.server_error"
