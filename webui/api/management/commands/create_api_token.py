"""Make a named API token for a user and print its key (the only time it is shown)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webui.api.models import ApiToken


class Command(BaseCommand):
    help = "Make a named API token for USER and print the key (shown once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="made on the command line", help="what the token is for")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(
                f"no user {options['username']!r}; create it first (manage.py createsuperuser)"
            )
        _token, key = ApiToken.create_for(user, options["name"])
        self.stdout.write(key)
