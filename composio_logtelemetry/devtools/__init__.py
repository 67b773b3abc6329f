"""Dev tooling: a local receiver (``serve``), the ``demo``, and the wire-schema validator.

None of it is part of the logging pipeline, which never imports this package. It needs the
``dev`` extra (``pip install 'composio-logtelemetry[dev]'``), for ``fastjsonschema``.
"""
