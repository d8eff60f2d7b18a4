"""The plugin system: the hook surface (``hookspecs``), component bases and kinds
(``components``), the generic ``Registry`` (``registry``) and the ``Session`` that loads plugins
and creates components (``session``)."""
