from sluice_dashboard.views import batch

batch.render()
