"""sluice/bounding_box_visualization: draw predictions on a copy of the image."""
