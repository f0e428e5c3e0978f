from django.urls import path

from triage import patient_views, views

urlpatterns = [
    path(
        "appointments/<str:reference>/photos/status/",
        patient_views.PhotoStatusView.as_view(),
        name="appointment-photo-status",
    ),
    path("photos/<int:photo_id>/image/", views.photo_image, name="photo-image"),
    path("photos/<int:photo_id>/heatmap/<int:prediction_id>/", views.prediction_heatmap, name="prediction-heatmap"),
    path("roi/tap-box/", views.roi_tap_box, name="roi-tap-box"),
    path("staff/", views.queue, name="staff-queue"),
    path("staff/badge/", views.flagged_badge, name="staff-badge"),
    path("staff/export/decisions.csv", views.export_decisions, name="staff-export-decisions"),
    path("staff/cases/<int:case_id>/", views.case_detail, name="staff-case"),
    path("staff/cases/<int:case_id>/lab-result/", views.lab_result, name="staff-lab-result"),
    path("staff/cases/<int:case_id>/decision/", views.decide, name="staff-decide"),
    path("staff/cases/<int:case_id>/claim/", views.claim, name="staff-claim"),
    path("staff/cases/<int:case_id>/release/", views.release, name="staff-release"),
    path(
        "staff/cases/<int:case_id>/decisions/<int:decision_id>/countersign/",
        views.countersign,
        name="staff-countersign",
    ),
    path("staff/cases/<int:case_id>/photos/<int:photo_id>/reanalyse/", views.reanalyse, name="staff-reanalyse"),
]
