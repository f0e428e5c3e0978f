from django.urls import path

from portal.booking import views

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("book/", views.book, name="book"),
    path("appointments/<str:reference>/", views.appointment_detail, name="appointment"),
    path("appointments/<str:reference>/cancel/", views.cancel, name="appointment-cancel"),
]
