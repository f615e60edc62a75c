app_name = "retailer"

urlpatterns = []
