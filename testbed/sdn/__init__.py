"""SDN mode: an OpenFlow 1.3 controller (OS-Ken) that does the Service work inside Open vSwitch.

Pure core, thin I/O, as everywhere in the testbed:

    topology.py    what the controller must know about the wiring (bridges, pods, hosts), JSON round-trip
    flows.py       flow/group descriptions (small dataclasses), cookies, ovs-ofctl rendering
    algorithms.py  load-balancing algorithms: slot tables (sh, dh, maglev) and reactive choosers
    pipeline.py    (topology, service ports) -> flows and groups of one bridge; render_openflow()
    state.py       the controller's desired state and the per-bridge changes a message causes
    openflow.py    flow/group descriptions -> OS-Ken OFPFlowMod/OFPGroupMod (and fast wire encoding)
    packets.py     TCP RST / ICMP port unreachable for Services without endpoints
    messages.py    JSON codec of the control socket's messages
    controller.py  the OS-Ken app and its process entry point (`python -m testbed.sdn.controller`)
    client.py      SdnClient (the testbed's side of the control socket) and SdnControllerProcess

docs/sdn-pipeline.md explains the table layout.
"""
