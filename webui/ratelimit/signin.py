"""Sign-in with a limit on wrong passwords, per account and per address.

After PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT wrong passwords for one user name (or
PINHOLE_SIGNIN_FAILURES_PER_ADDRESS from one address, whatever the names tried), every sign-in there
is refused, the right password included, until the window ends; the page says how long. A right
password before that clears the account's count. Counted by the site's one limiter (limiter.py).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import LoginView, redirect_to_login
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from webui.lib.rates import Rate, as_rate
from webui.ratelimit import limiter

ACCOUNT, ADDRESS = "signin-account", "signin-address"


def _rate(name: str) -> Rate:
    return as_rate(getattr(settings, name))


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


class SignInView(LoginView):
    def _who(self) -> tuple[str, str]:
        return (self.request.POST.get("username") or "").strip().lower(), limiter.client_ip(self.request)

    def post(self, request, *args, **kwargs):
        # Count the attempt as a failure first (exact however many arrive at once); a right password
        # then clears the account's count and gives the address its use back.
        account, address = self._who()
        for scope, who, setting, whose in (
            (ACCOUNT, account, "PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT", "for this account"),
            (ADDRESS, address, "PINHOLE_SIGNIN_FAILURES_PER_ADDRESS", "from your network"),
        ):
            wait = limiter.hit(scope, who, _rate(setting))
            if wait:
                form = self.get_form()
                form.errors.clear()
                form.add_error(
                    None, f"Too many wrong passwords {whose}. Wait {_minutes(wait)}, then try again."
                )
                response = self.render_to_response(self.get_context_data(form=form, locked=True))
                response.status_code = 429
                response["Retry-After"] = str(wait)
                return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        account, address = self._who()
        limiter.clear(ACCOUNT, account, _rate("PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT"))
        limiter.refund(ADDRESS, address, _rate("PINHOLE_SIGNIN_FAILURES_PER_ADDRESS"))
        return super().form_valid(form)


def admin_login(request, extra_context=None):
    """The admin's sign-in goes through the site's (the one with the limit): the admin's own form
    would accept wrong passwords without counting them."""
    next_url = request.GET.get("next") or reverse("admin:index")
    if request.user.is_authenticated and request.user.is_staff:
        return redirect(
            next_url if url_has_allowed_host_and_scheme(next_url, None) else reverse("admin:index")
        )
    return redirect_to_login(next_url)
