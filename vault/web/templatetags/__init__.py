"""Template filters of the back office's pages."""
