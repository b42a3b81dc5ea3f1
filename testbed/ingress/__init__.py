"""An ingress controller like ingress-nginx, and the Gateway API on the same nginx.

Pure core, thin I/O (the same split as the data planes):

  Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap   Gateway API objects
        │ model.py (class selection, host merging, path types,         │ gateway.py (listeners,
        │ default backends, upstreams) with annotations.py,            │ hostnames, matches, weights,
        │ settings.py (the ConfigMap) and tls.py (Secrets, SNI)        │ filters, route status)
        ▼                                                              ▼
                 nginx.py: one nginx.conf text + certificate files (pure)
        ──────────────────────────────────────────────────────────────────────────
                 controller.py: write, `nginx -t` on a temporary file, reload (SIGHUP)
                 in every controller pod; events, logs, Ingress/Gateway status

The controller pods are the `ingress-nginx-controller` Deployment of the `ingress` add-on
(addon.py); the kubelet hands their containers to controller.py, which runs nginx inside them.
"""
