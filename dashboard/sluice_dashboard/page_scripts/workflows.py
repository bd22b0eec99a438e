from sluice_dashboard.views import workflows

workflows.render()
