from sluice_dashboard.views import job

job.render()
