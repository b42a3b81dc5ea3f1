"""Scripts that experiments run inside pods (standard library only, `python3 -I -S`); each prints one
JSON line. They are not imported by the testbed: they are files a pod's process executes."""
