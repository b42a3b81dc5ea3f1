"""Service admission (ClusterIP and NodePort allocation, immutable fields) and the LoadBalancer IP
controller (MetalLB's role: hand out IPs from a pool, lowest first)."""
from __future__ import annotations

from .allocators import AllocationError
from .context import ServicesContext

EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


def _port_key(port: dict) -> tuple:
    return port.get("port"), port.get("protocol", "TCP")


class ServiceAdmission:
    """Allocates for one batch without touching the allocators until the batch commits.

    `plan()` records what each Service would get and reports conflicts as (field, reason); `commit()`
    writes the plan into the allocators. A batch is admitted whole or not at all."""

    def __init__(self, cp: ServicesContext):
        self.cp = cp
        self.taken_ips: set[str] = set()
        self.taken_ports: set[int] = set()
        self.released_ips: set[str] = set()
        self.released_ports: set[int] = set()

    def _ip_free(self, ip: str) -> bool:
        return ip not in self.taken_ips and (self.cp.cluster_ips.is_free(ip) or ip in self.released_ips)

    def _port_free(self, port: int) -> bool:
        return port not in self.taken_ports and (self.cp.node_ports.is_free(port) or port in self.released_ports)

    def _new_ip(self) -> str:
        """Tentative: reserved for real in commit()."""
        try:
            return self.cp.cluster_ips.pick_free(self.taken_ips)
        except AllocationError:
            raise AllocationError("failed to allocate a serviceIP: range is full") from None

    def _new_port(self) -> int:
        try:
            return self.cp.node_ports.pick_free(self.taken_ports)
        except AllocationError:
            raise AllocationError("failed to allocate a nodePort: range is full") from None

    def plan(self, obj: dict, old: dict | None) -> list[tuple[str, str]]:
        """Fill in spec.clusterIP / nodePorts / healthCheckNodePort on `obj` (in place)."""
        problems: list[tuple[str, str]] = []
        spec = obj["spec"]
        old_spec = (old or {}).get("spec") or {}
        service_type = spec.get("type", "ClusterIP")

        # ClusterIP: immutable once set; allocated when empty.
        if old is not None and old_spec.get("clusterIP") and service_type != "ExternalName" \
                and old_spec.get("type") != "ExternalName":
            requested = spec.get("clusterIP")
            if requested in (None, ""):
                spec["clusterIP"] = old_spec["clusterIP"]
            elif requested != old_spec["clusterIP"]:
                problems.append(("spec.clusterIP", f'Invalid value: "{requested}": field is immutable'))
        elif service_type == "ExternalName":
            spec.pop("clusterIP", None)
        elif spec.get("clusterIP") == "None":
            pass
        elif spec.get("clusterIP"):
            ip = spec["clusterIP"]
            if not self._ip_free(ip):
                problems.append(("spec.clusterIP", f'Invalid value: "{ip}": provided IP is already allocated'))
            else:
                self.taken_ips.add(ip)
        else:
            try:
                spec["clusterIP"] = self._new_ip()
                self.taken_ips.add(spec["clusterIP"])
            except AllocationError as err:
                problems.append(("spec.clusterIP", f"Internal error: {err}"))
        if spec.get("clusterIP") and service_type != "ExternalName":
            spec["clusterIPs"] = [spec["clusterIP"]]

        # NodePorts (pkg/registry/core/service/storage/alloc.go initNodePorts/updateNodePorts): kept across
        # updates for the same (port, protocol); ports with the same port number share one nodePort (TCP and
        # UDP 53, say: svcPortToNodePort); a requested one must be free unless this Service holds it already.
        ports = spec.get("ports") or []
        old_node_ports = {_port_key(p): p.get("nodePort") for p in old_spec.get("ports") or []
                          if old_spec.get("type") in EXTERNAL_TYPES}
        own_previous = self._previous_ports(old)
        mine: dict[int, object] = {}          # nodePort -> the port number that holds it in this Service
        by_number: dict[object, int] = {}     # port number -> its nodePort
        for i, port in enumerate(ports):
            if service_type not in EXTERNAL_TYPES:
                port.pop("nodePort", None)
                continue
            if service_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False \
                    and not port.get("nodePort"):
                continue
            number = port.get("port")
            wanted = port.get("nodePort") or old_node_ports.get(_port_key(port)) or by_number.get(number) or \
                next((p.get("nodePort") for p in ports[i + 1:] if p.get("port") == number and p.get("nodePort")), None)
            if not wanted:
                try:
                    wanted = self._new_port()
                except AllocationError as err:
                    problems.append((f"spec.ports[{i}].nodePort", f"Internal error: {err}"))
                    continue
            elif wanted in mine:
                if mine[wanted] != number:
                    problems.append((f"spec.ports[{i}].nodePort",
                                     f"Invalid value: {wanted}: provided port is already allocated"))
                port["nodePort"] = wanted
                continue
            elif wanted not in own_previous and not self._port_free(wanted):
                problems.append((f"spec.ports[{i}].nodePort", f"Invalid value: {wanted}: provided port is already allocated"))
                continue
            port["nodePort"] = wanted
            self.taken_ports.add(wanted)
            mine[wanted] = number
            by_number.setdefault(number, wanted)

        # healthCheckNodePort: LoadBalancer services with externalTrafficPolicy Local; a port of its own,
        # from the same allocator as the nodePorts.
        if service_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            wanted = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
            if wanted:
                if wanted in mine or (wanted not in own_previous and not self._port_free(wanted)):
                    problems.append(("spec.healthCheckNodePort", f"Invalid value: {wanted}: provided port is already allocated"))
                else:
                    spec["healthCheckNodePort"] = wanted
                    self.taken_ports.add(wanted)
                    mine[wanted] = "healthCheckNodePort"
            else:
                try:
                    spec["healthCheckNodePort"] = self._new_port()
                    self.taken_ports.add(spec["healthCheckNodePort"])
                    mine[spec["healthCheckNodePort"]] = "healthCheckNodePort"
                except AllocationError as err:
                    problems.append(("spec.healthCheckNodePort", f"Internal error: {err}"))
        else:
            spec.pop("healthCheckNodePort", None)
        for previous in own_previous:
            if previous not in mine:
                self.released_ports.add(previous)
        if old is not None and old_spec.get("clusterIP") not in (None, "", "None") \
                and old_spec["clusterIP"] != spec.get("clusterIP"):
            self.released_ips.add(old_spec["clusterIP"])
        return problems

    @staticmethod
    def _previous_ports(old: dict | None) -> set[int]:
        spec = (old or {}).get("spec") or {}
        ports = {p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            ports.add(spec["healthCheckNodePort"])
        return ports

    def commit(self) -> None:
        for ip in self.released_ips - self.taken_ips:
            self.cp.cluster_ips.release(ip)
        for port in self.released_ports - self.taken_ports:
            self.cp.node_ports.release(port)
        for ip in self.taken_ips:
            self.cp.cluster_ips.reserve(ip)
        for port in self.taken_ports:
            self.cp.node_ports.reserve(port)


def release_service(cp: ServicesContext, service: dict) -> None:
    spec = service.get("spec") or {}
    if spec.get("clusterIP") not in (None, "", "None"):
        cp.cluster_ips.release(spec["clusterIP"])
    for port in spec.get("ports") or []:
        cp.node_ports.release(port.get("nodePort"))
    cp.node_ports.release(spec.get("healthCheckNodePort"))
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip") and cp.lb_pool.contains(ingress["ip"]):
            cp.lb_pool.release(ingress["ip"])


def sync_load_balancer(cp: ServicesContext, service: dict) -> None:
    """MetalLB's controller: give a LoadBalancer Service an IP from the pool (spec.loadBalancerIP when
    it asks for one), and take it back when the Service stops being a LoadBalancer."""
    spec = service.get("spec") or {}
    status = service.setdefault("status", {})
    current = [i.get("ip") for i in (status.get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
    if spec.get("type") != "LoadBalancer":
        if current:
            for ip in current:
                if cp.lb_pool.contains(ip):
                    cp.lb_pool.release(ip)
            status["loadBalancer"] = {}
            cp.store.update(service)
        return
    if spec.get("loadBalancerClass"):
        return   # another load-balancer implementation's Service: MetalLB (and so the pool) leaves it alone
    wanted = spec.get("loadBalancerIP")
    if current and (not wanted or wanted == current[0]):
        return
    for ip in current:
        cp.lb_pool.release(ip)
    try:
        if wanted:
            if not cp.lb_pool.contains(wanted) or not cp.lb_pool.is_free(wanted):
                cp.record_event(service, "Warning", "AllocationFailed",
                                f"requested IP {wanted} is not free in the pool")
                return
            cp.lb_pool.reserve(wanted)
            ip = wanted
        else:
            ip = cp.lb_pool.allocate()
    except AllocationError:
        cp.record_event(service, "Warning", "AllocationFailed", "no available IPs in the LoadBalancer pool")
        return
    status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
    cp.store.update(service)
    cp.record_event(service, "Normal", "IPAllocated", f"Assigned IP [\"{ip}\"]")
