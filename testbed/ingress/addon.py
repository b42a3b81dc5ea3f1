"""The `ingress` add-on's API objects, as ingress-nginx's deploy manifest (deploy/static/provider/
cloud/deploy.yaml) makes them: namespace ingress-nginx, the IngressClass `nginx` (the default
class), the GatewayClass `nginx`, the controller Deployment and its LoadBalancer Service (80 and 443, NodePorts allocated,
externalTrafficPolicy Local so that the backends see the client's address; the pool's last
address, 172.18.255.250 by default), and the controller
ConfigMap `nginx-configuration` (the name the seed articles use; applying theirs updates it)."""
from __future__ import annotations

from .model import CLASS_NAME, CONTROLLER, DEFAULT_CLASS_ANNOTATION
from .nginx import HEALTH_PORT

NAMESPACE = "ingress-nginx"
NAME = "ingress-nginx-controller"
CONFIGMAP = "nginx-configuration"
IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.11.2"
LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
          "app.kubernetes.io/component": "controller"}
PART_OF = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/part-of": "ingress-nginx"}


def claims_image(image: str) -> bool:
    """The controller image (any tag or registry): `.../ingress-nginx/controller:TAG`."""
    return "ingress-nginx/controller" in image.split("@")[0]


def ingress_objects(config) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": dict(PART_OF)}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": CLASS_NAME, "labels": dict(LABELS),
                      "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
         "spec": {"controller": CONTROLLER}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": CLASS_NAME, "labels": dict(LABELS)},
         "spec": {"controllerName": CONTROLLER,
                  "description": "the testbed's ingress-nginx, serving Gateway API HTTPRoutes too"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "labels": dict(PART_OF)}, "data": {}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
         # The pool's last address, so that the Services users create keep getting the first ones.
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": dict(LABELS),
                  "loadBalancerIP": config.lb_pool[1],
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "appProtocol": "http"},
                            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https",
                             "appProtocol": "https"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
         "spec": {"replicas": 1, "selector": {"matchLabels": dict(LABELS)},
                  "template": {"metadata": {"labels": dict(LABELS)}, "spec": {
                      "dnsPolicy": "ClusterFirst",
                      "containers": [{
                          "name": "controller", "image": IMAGE,
                          "args": ["/nginx-ingress-controller", f"--publish-service=$(POD_NAMESPACE)/{NAME}",
                                   "--election-id=ingress-nginx-leader", f"--controller-class={CONTROLLER}",
                                   f"--ingress-class={CLASS_NAME}", f"--configmap=$(POD_NAMESPACE)/{CONFIGMAP}"],
                          "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                  {"name": "POD_NAMESPACE",
                                   "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                          "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                                    {"name": "https", "containerPort": 443, "protocol": "TCP"}],
                          "readinessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT, "scheme": "HTTP"},
                                             "periodSeconds": 1, "failureThreshold": 3},
                          "livenessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT, "scheme": "HTTP"},
                                            "initialDelaySeconds": 10, "periodSeconds": 10,
                                            "failureThreshold": 5}}]}}}},
    ]
