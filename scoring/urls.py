from .views import branch, ledger_import, member
from .views import exports as export_views

app_name = "scoring"

urlpatterns = branch.urlpatterns + member.urlpatterns + ledger_import.urlpatterns
urlpatterns += export_views.urlpatterns
