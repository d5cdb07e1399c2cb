"""API authentication by personal token: `Authorization: Token <key>` (or `Bearer <key>`)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from webui.api.models import ApiToken


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Looks the key up by its hash; revoked, unknown and malformed keys get the same 401."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower().decode(errors="replace") not in self.keywords:
            return None  # no token: another authenticator (the session) may apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give `Token <key>`.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.authenticate(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes it: the same header scheme as DRF's own token authentication."""

    target_class = "webui.api.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A personal token from the API page, with the prefix "Token": `Token ph_...`',
        }
