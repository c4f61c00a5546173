from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from members import views as member_views

admin.site.site_header = "党员积分管理"
admin.site.site_title = "党员积分管理"
admin.site.index_title = "后台管理"

urlpatterns = [
    path("", member_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("", include("members.urls")),
    path("", include("scoring.urls")),
    path("", include("publicity.urls")),
    path("", include("reviews.urls")),
]
