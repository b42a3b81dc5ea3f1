"""One module per Service data-plane backend; each registers itself (testbed/proxy/backend.py).

Every module here that does not start with `_` is imported by the registry on first use, so a new
backend is one new module (plus its tests) and nothing else.
"""
