"""Headers every answer should carry that no view should have to remember."""

from __future__ import annotations

from django.utils.cache import patch_cache_control


class PrivatePagesMiddleware:
    """A page made for a signed-in person is theirs alone: no shared cache (a proxy, a CDN) may keep
    it, and the browser asks again instead of showing a stale copy after sign-out. Answers that set
    their own Cache-Control (images with ETags, static files) keep it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if "Cache-Control" not in response and user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_cache=True)
        return response


# Pages of other projects' making that write inline styles of their own: Django's admin (a few style
# attributes) and Swagger UI (drf-spectacular's page has a <style> block). Scripts stay their own files.
INLINE_STYLE_PATHS = ("/admin/", "/api/v1/docs/")


class ThirdPartyStylesMiddleware:
    """Lets the pages under INLINE_STYLE_PATHS (and only they) keep inline styles. Sits inside
    django-csp's middleware, which reads the relaxation off the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith(INLINE_STYLE_PATHS):
            response._csp_update = {"style-src": ["'unsafe-inline'"]}
        return response
