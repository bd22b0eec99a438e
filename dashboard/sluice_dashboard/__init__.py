"""The Sluice dashboard: a Streamlit app that is a gRPC client of staging and the scheduler."""
