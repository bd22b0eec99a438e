from sluice_dashboard.views import new_job

new_job.render()
