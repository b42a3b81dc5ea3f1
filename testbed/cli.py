"""The `testbed` command."""
def main(argv=None):
    raise SystemExit("testbed: not ready")
