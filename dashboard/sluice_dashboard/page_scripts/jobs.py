from sluice_dashboard.views import jobs

jobs.render()
