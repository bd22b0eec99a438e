from sluice_dashboard.views import models

models.render()
