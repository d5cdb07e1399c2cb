"""The Pinhole web app: Django project package."""

from webui.celery import app as celery_app

__all__ = ["celery_app"]
