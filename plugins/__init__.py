"""vidrl's built-in plugins. Each module is loaded through the ``vidrl`` entry-point group, exactly
as a third party's plugin is, and imports only the public ``vidrl`` API."""
