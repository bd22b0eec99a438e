"""One module per page; each has `render()`, which the page script in page_scripts/ calls."""
