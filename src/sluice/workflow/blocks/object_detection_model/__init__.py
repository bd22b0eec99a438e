"""sluice/object_detection_model: run a registered detection model."""
