from sluice_dashboard.views import usage

usage.render()
