"""The fake OpenFlow switch itself: it must fail loudly where OVS would be ambiguous."""
import pytest

from testbed.sdn.flows import (
    Bucket, Ct, Flow, Group, Learn, Nat, Output, Resubmit, SelectGroup, SetField, ct_state, match, owner_cookie)

from tests.support.fake_openflow import FakeOpenFlowError, FakeSwitch, tcp

A, B = owner_cookie(0x10, 1), owner_cookie(0x10, 2)


def packet(**changes):
    return dict(tcp(1, "02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", 1000, "10.0.0.2", 80), **changes)


def switch(*flows):
    sw = FakeSwitch("s", {1, 2, 3})
    for flow in flows:
        sw.add_flow(flow)
    return sw


def test_same_match_and_priority_from_two_owners_is_an_error():
    sw = switch(Flow(0, 10, match(in_port=1), (Output(2),), A))
    sw.add_flow(Flow(0, 10, match(in_port=1), (Output(3),), A))      # the owner replaces its own flow
    with pytest.raises(FakeOpenFlowError):
        sw.add_flow(Flow(0, 10, match(in_port=1), (Output(3),), B))


def test_two_flows_at_one_priority_matching_one_packet_is_an_error():
    sw = switch(Flow(0, 10, match(in_port=1), (Output(2),), A),
                Flow(0, 10, match(tcp_dst=80, eth_type=0x800, ip_proto=6), (Output(3),), A))
    with pytest.raises(FakeOpenFlowError):
        sw.process(packet())
    assert sw.process(packet(in_port=3, tcp_dst=81)).outputs == []


def test_priority_masks_and_goto():
    sw = switch(Flow(0, 20, match(eth_type=0x800, ipv4_dst="10.0.0.0/24"), (), A, goto=5),
                Flow(0, 10, match(eth_type=0x800), (Output(3),), A),
                Flow(5, 0, match(), (SetField("eth_dst", "02:00:00:00:00:09"), Output(2)), A))
    port, out = sw.process(packet()).only()
    assert (port, out["eth_dst"]) == (2, "02:00:00:00:00:09")
    assert sw.process(packet(ipv4_dst="10.0.1.2")).ports() == [3]


def test_output_to_the_input_port_is_dropped_unless_in_port():
    sw = switch(Flow(0, 0, match(), (Output(1),), A))
    assert sw.process(packet()).outputs == []


def test_resubmit_to_a_miss_returns_and_group_buckets_work_on_a_clone():
    sw = switch(Flow(0, 0, match(), (Resubmit(7), Group(1), Output(2)), A))
    sw.add_group(SelectGroup(1, (Bucket((SetField("reg0", 5), Output(3))),)))
    result = sw.process(packet())
    assert result.ports() == [3, 2]


def test_ct_with_table_forks_and_nat_is_applied_to_replies():
    sw = switch(Flow(0, 0, match(eth_type=0x800), (Ct(zone=1, nat=Nat(), table=1),), A),
                Flow(1, 10, match(ct_state=ct_state(new=True, trk=True), eth_type=0x800),
                     (Ct(zone=1, commit=True, nat=Nat("dst", "10.0.0.9", 8080), table=2),), A),
                Flow(1, 5, match(ct_state=ct_state(est=True, trk=True)), (Output(3),), A),
                Flow(2, 0, match(), (Output(2),), A))
    port, out = sw.process(packet()).only()
    assert (port, out["ipv4_dst"], out["tcp_dst"]) == (2, "10.0.0.9", 8080)
    reply = packet(in_port=2, ipv4_src="10.0.0.9", tcp_src=8080, ipv4_dst="10.0.0.1", tcp_dst=1000)
    port, out = sw.process(reply).only()
    assert (port, out["ipv4_src"], out["tcp_src"]) == (3, "10.0.0.2", 80)


def test_learn_adds_a_flow_that_expires_when_idle():
    learn = Learn(table=3, priority=5, cookie=A, idle_timeout=10, fixed=(("eth_type", 0x800),), copy=("ipv4_src",),
                  loads=((7, "reg0"),))
    sw = switch(Flow(0, 0, match(eth_type=0x800), (learn,), A))
    sw.process(packet())
    (learned,) = sw.flows(3)
    assert dict(learned.match) == {"eth_type": 0x800, "ipv4_src": "10.0.0.1"} and learned.actions == (SetField("reg0", 7),)
    sw.advance(11)
    assert sw.flows(3) == []


def test_loops_are_caught():
    sw = switch(Flow(0, 0, match(), (Resubmit(0),), A))
    with pytest.raises(FakeOpenFlowError):
        sw.process(packet())


def test_ct_mark_outside_ct_exec_is_refused():
    sw = switch(Flow(0, 0, match(), (SetField("ct_mark", 1),), A))
    with pytest.raises(FakeOpenFlowError):
        sw.process(packet())
