from .views import branch, member

app_name = "scoring"

urlpatterns = branch.urlpatterns + member.urlpatterns
