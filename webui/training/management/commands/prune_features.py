"""Delete cached feature vectors that no training will read again."""

from django.core.management.base import BaseCommand
from django.db import transaction

from classifier.features import is_current_cache_key
from webui.projects.models import Image
from webui.training.models import FeatureVector


class Command(BaseCommand):
    help = (
        "Delete cached feature vectors in a layout this version of Pinhole no longer reads (left by an "
        "upgrade) and those of images that no project holds any more. Models are not affected: each "
        "version carries its own network. A retrain extracts what it needs again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        keys = FeatureVector.objects.values_list("backbone_id", flat=True).distinct()
        stale_keys = sorted(k for k in keys if not is_current_cache_key(k))
        old_layout = FeatureVector.objects.filter(backbone_id__in=stale_keys)
        orphans = FeatureVector.objects.exclude(backbone_id__in=stale_keys).exclude(
            sha256__in=Image.objects.values("sha256")
        )
        counts = (old_layout.count(), orphans.count())
        verb = "would delete" if dry_run else "deleted"
        if not dry_run:
            with transaction.atomic():
                old_layout.delete()
                orphans.delete()
        self.stdout.write(
            f"{verb} {counts[0]} vectors in an earlier layout ({len(stale_keys)} keys) and {counts[1]} "
            f"of images no project holds; {FeatureVector.objects.count()} remain"
        )
