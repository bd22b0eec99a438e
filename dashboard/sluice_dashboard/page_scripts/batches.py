from sluice_dashboard.views import batches

batches.render()
