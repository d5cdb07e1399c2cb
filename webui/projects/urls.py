from django.urls import path

from webui.projects import label_views, views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<int:project_id>/", views.project_detail, name="detail"),
    path("<int:project_id>/delete/", views.project_delete, name="delete"),
    path("<int:project_id>/settings/", views.project_settings, name="settings"),
    path("<int:project_id>/members/add/", views.member_add, name="member-add"),
    path("<int:project_id>/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("<int:project_id>/upload/", views.upload, name="upload"),
    path("<int:project_id>/upload/zip/", views.upload_zip, name="upload-zip"),
    path("<int:project_id>/imports/<int:job_id>/", views.zip_import, name="zip-import"),
    path("<int:project_id>/imports/<int:job_id>/cancel/", views.zip_import_cancel, name="zip-import-cancel"),
    path("<int:project_id>/suggestions/<int:job_id>/", views.suggestion_refresh, name="suggestion-refresh"),
    path("<int:project_id>/label/", label_views.label, name="label"),
    path("<int:project_id>/label/apply/", label_views.label_apply, name="label-apply"),
    path("<int:project_id>/label/accept/", label_views.accept_suggestions, name="accept-suggestions"),
    path("<int:project_id>/labels/new/", views.label_create, name="label-create"),
    path("<int:project_id>/labels/<int:label_id>/", views.label_update, name="label-update"),
    path("<int:project_id>/labels/<int:label_id>/delete/", views.label_delete, name="label-delete"),
    path("<int:project_id>/dataset.zip", views.export_dataset, name="export"),
    path("<int:project_id>/images/<int:image_id>/thumb", views.image_thumb, name="image-thumb"),
    path("<int:project_id>/images/<int:image_id>/full", views.image_full, name="image-full"),
]
