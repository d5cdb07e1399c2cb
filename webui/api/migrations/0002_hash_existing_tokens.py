"""Keys made with DRF's authtoken (`drf_create_token`, stored in plain text) become hashed ApiTokens that
keep working; the plain-text rows are deleted."""

import hashlib

from django.db import migrations


def hash_existing(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("api", "ApiToken")
    for token in Token.objects.all():
        ApiToken.objects.get_or_create(
            key_hash=hashlib.sha256(token.key.encode("utf-8")).hexdigest(),
            defaults={"user_id": token.user_id, "name": "made before named tokens", "hint": token.key[:8]},
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("api", "0001_api_tokens"), ("authtoken", "0004_alter_tokenproxy_options")]

    operations = [migrations.RunPython(hash_existing, migrations.RunPython.noop)]
