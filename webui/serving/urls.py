from django.urls import path

from webui.serving import device_views, review_views, views

app_name = "serving"

urlpatterns = [
    path("projects/<int:project_id>/try/", views.try_page, name="try"),
    path("projects/<int:project_id>/try/predict/", views.try_predict, name="predict"),
    path("projects/<int:project_id>/review/", review_views.queue_page, name="review"),
    path("projects/<int:project_id>/review/<int:record_id>/", review_views.decide, name="review-decide"),
    path("projects/<int:project_id>/review/<int:record_id>/photo", review_views.photo, name="review-photo"),
    path("projects/<int:project_id>/share/", views.share, name="share"),
    path("projects/<int:project_id>/share/<int:link_id>/revoke/", views.share_revoke, name="share_revoke"),
    path(
        "projects/<int:project_id>/share/<int:link_id>/regenerate/",
        views.share_regenerate,
        name="share_regenerate",
    ),
    # Public, no account: the token is the only key. Nothing else about the project is reachable here.
    path("s/<str:token>/", views.public, name="public"),
    path("s/<str:token>/predict", views.public_predict, name="public_predict"),
    path("s/<str:token>/feedback", views.public_feedback, name="public_feedback"),
    path("s/<str:token>/embed", views.embed, name="embed"),
    # "Run on this device", for links that allow it: the page's settings, and the model itself.
    path("s/<str:token>/device", device_views.public_device, name="public_device"),
    path("s/<str:token>/model/<int:version_id>.onnx", device_views.public_model, name="public_model"),
]
