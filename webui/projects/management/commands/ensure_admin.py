"""Create the first admin account on a fresh install, and say how to sign in."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from webui.lib.env import env_str


class Command(BaseCommand):
    help = "Create an admin account if there is no user yet (reads DJANGO_SUPERUSER_USERNAME/PASSWORD)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the site is served")

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            return
        username = env_str("DJANGO_SUPERUSER_USERNAME", "admin")
        password = env_str("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS("Created the first admin account."))
        self.stdout.write(f"  Sign in at {options['url']} as '{username}'")
        if generated:
            self.stdout.write(f"  with the password: {password}")
            self.stdout.write("  (shown once; change it under 'Password' once signed in)")
