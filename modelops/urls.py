from django.urls import path

from modelops import views

urlpatterns = [
    path("staff/model-card/", views.model_card, name="staff-model-card"),
    path("staff/performance/", views.model_performance, name="staff-performance"),
    path("staff/performance/comparison/", views.model_comparison, name="staff-comparison"),
]
