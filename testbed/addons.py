"""The cluster add-ons the testbed ships (registered in testbed/components.py's registry).

- ingress: namespace ingress-nginx, the default IngressClass `nginx`, the ingress-nginx-controller
  Deployment and LoadBalancer Service, and the controller ConfigMap; its pods run nginx configured
  from Ingress and Gateway API objects (testbed/ingress/).
- dns: the kube-dns Service (the 10th address of the service CIDR, as kubeadm gives it) and the
  coredns Deployment in kube-system, whose pods run Unbound fed with the records the Kubernetes
  DNS specification prescribes (testbed/dns/).
"""
from __future__ import annotations

import ipaddress

from .components import Addon, register_addon

COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.1"
DNS_SERVICE_INDEX = 10     # kubeadm: the 10th address of the service CIDR


def image_name(image: str) -> str:
    """`registry.k8s.io/coredns/coredns:v1.11.1` -> `coredns`."""
    return image.rsplit("/", 1)[-1].split(":")[0].split("@")[0].lower()


def dns_service_ip(service_cidr: str) -> str:
    return str(ipaddress.ip_network(service_cidr).network_address + DNS_SERVICE_INDEX)


def cluster_dns_objects(config) -> list[dict]:
    labels = {"k8s-app": "kube-dns"}
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      # kubeadm's labels; `kubectl cluster-info` lists kubernetes.io/cluster-service Services
                      "labels": {**labels, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
         "spec": {"clusterIP": dns_service_ip(config.service_cidr), "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
         "spec": {"replicas": config.dns_replicas, "selector": {"matchLabels": labels},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "dnsPolicy": "Default",
                      "containers": [{
                          "name": "coredns", "image": COREDNS_IMAGE,
                          "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                          "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 1}}]}}}},
    ]


def _dns_component(ctx):
    from .dns.cluster import ClusterDNS
    return ClusterDNS(ctx)


register_addon(Addon(
    name="dns",
    summary="cluster DNS: the kube-dns Service and coredns pods serving the Kubernetes DNS records (Unbound)",
    objects=cluster_dns_objects,
    make_component=_dns_component,
    images=(lambda image: "coredns" in image_name(image),),
))


def _ingress_component(ctx):
    from .ingress.controller import IngressController
    return IngressController(ctx)


def _ingress_objects(config) -> list[dict]:
    from .ingress.addon import ingress_objects
    return ingress_objects(config)


def _claims_ingress_image(image: str) -> bool:
    from .ingress.addon import claims_image
    return claims_image(image)


register_addon(Addon(
    name="ingress",
    summary="ingress-nginx: the nginx IngressClass and controller pods serving Ingress and Gateway API routes",
    objects=_ingress_objects,
    make_component=_ingress_component,
    images=(_claims_ingress_image,),
))
