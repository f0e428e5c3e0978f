from django.urls import path

from portal.booking import views

urlpatterns = [
    path("", views.home, name="home"),
    path("information/", views.information, name="patient-information"),
    path("signup/", views.signup, name="signup"),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/verify/<str:uidb64>/<str:token>/", views.verify_email, name="verify-email"),
    path("accounts/link/", views.request_sign_in_link, name="sign-in-link-request"),
    path("accounts/link/<str:token>/", views.sign_in_link, name="sign-in-link"),
    path("book/", views.book, name="book"),
    path("appointments/<str:reference>/", views.appointment_detail, name="appointment"),
    path("appointments/<str:reference>/reschedule/", views.reschedule, name="appointment-reschedule"),
    path("appointments/<str:reference>/cancel/", views.cancel, name="appointment-cancel"),
    path("appointments/<str:reference>/research-consent/", views.research_consent, name="appointment-research-consent"),
]
