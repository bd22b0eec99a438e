"""The exporter: packs a job's processing results into archives optimised for download."""
