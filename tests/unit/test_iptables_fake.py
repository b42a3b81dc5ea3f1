"""The fake iptables itself: strict parsing, restore semantics, branch probabilities."""
import pytest

from tests.support.fake_iptables import FakeIptables, FakeIptablesError, parse_rule


def loaded(*nat_lines, filter_lines=()):
    fake = FakeIptables()
    fake.restore("\n".join(["*filter", *filter_lines, "COMMIT", "*nat", *nat_lines, "COMMIT"]) + "\n")
    return fake


@pytest.mark.parametrize("rule", [
    "-m set --match-set foo dst -j ACCEPT",          # unknown module
    "-m tcp -p tcp --tcp-flags SYN SYN -j ACCEPT",   # unknown option
    "-p tcp --dport 80 -j ACCEPT",                    # --dport without -m tcp
    "-m addrtype --dst-type UNICAST -j ACCEPT",       # address type not modelled
    "-m statistic --mode nth --every 2 -j ACCEPT",
    "-j DNAT --to-source 1.2.3.4",                    # wrong target option
    "-j ACCEPT --bogus",
])
def test_unknown_matches_and_options_are_errors(rule):
    with pytest.raises(FakeIptablesError):
        parse_rule(rule)


def test_known_rule_parses_into_matches():
    rule = parse_rule('-m comment --comment "a b" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ')
    kinds = {(m.kind, m.negated) for m in rule.matches}
    assert {("proto", False), ("dst", False), ("dport", False), ("src", True), ("comment", False)} <= kinds
    assert rule.target == "KUBE-MARK-MASQ"


def test_jump_to_an_undeclared_chain_fails_and_changes_nothing():
    fake = loaded(":A - [0:0]", "-A A -j ACCEPT")
    before = fake.save()
    with pytest.raises(FakeIptablesError):
        fake.restore("*nat\n:B - [0:0]\n-A B -j NOPE\nCOMMIT\n")
    assert fake.save() == before


def test_deleting_a_referenced_chain_fails():
    fake = loaded(":A - [0:0]", ":B - [0:0]", "-A A -j B")
    with pytest.raises(FakeIptablesError):
        fake.restore("*nat\n-X B\nCOMMIT\n")
    fake.restore("*nat\n:A - [0:0]\n-X B\nCOMMIT\n")   # flush A first: now B can go
    assert "B" not in fake.chains("nat")


def test_noflush_keeps_other_chains_and_chain_lines_flush():
    fake = loaded(":A - [0:0]", ":B - [0:0]", "-A A -j ACCEPT", "-A B -j ACCEPT")
    fake.restore("*nat\n:A - [0:0]\n-A A -j RETURN\nCOMMIT\n", noflush=True)
    assert fake.rules("nat", "A") == ["-j RETURN"] and fake.rules("nat", "B") == ["-j ACCEPT"]
    fake.restore("*nat\nCOMMIT\n", noflush=False)
    assert fake.chains("nat") == {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}


def test_insert_goes_to_the_top():
    fake = loaded(":A - [0:0]", ":B - [0:0]", "-I PREROUTING -j A", "-I PREROUTING -j B")
    assert fake.rules("nat", "PREROUTING") == ["-j B", "-j A"]


def test_statistic_branches_multiply():
    fake = loaded(
        ":S - [0:0]",
        "-A PREROUTING -d 10.96.0.1 -j S",
        "-A S -m statistic --mode random --probability 0.2500000000 -j DNAT --to-destination 10.0.0.1:80",
        "-A S -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.0.0.2:80",
        "-A S -j DNAT --to-destination 10.0.0.3:80")
    chances = fake.trace("10.0.9.9", "10.96.0.1", dport=80).dnat_probabilities()
    assert chances == pytest.approx({"10.0.0.1:80": 0.25, "10.0.0.2:80": 0.375, "10.0.0.3:80": 0.375})


def test_return_resumes_the_calling_chain_and_marks_accumulate():
    fake = loaded(
        ":M - [0:0]",
        "-A M -j MARK --or-mark 0x00004000",
        "-A M -j RETURN",
        "-A M -j MARK --or-mark 0x1",
        "-A PREROUTING -j M",
        "-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A POSTROUTING -j MASQUERADE --random-fully")
    outcome = fake.trace("10.0.9.9", "10.96.0.1", dport=80).only
    assert outcome.mark == 0x4000 and outcome.masquerade


def test_filter_rules_see_the_translated_destination():
    fake = loaded("-A PREROUTING -d 10.96.0.1 -j DNAT --to-destination 10.0.0.1:80",
                  filter_lines=["-A FORWARD -d 10.0.0.1 -m conntrack --ctstate DNAT -j REJECT"])
    assert fake.trace("10.0.9.9", "10.96.0.1", dport=80).only.verdict == "REJECT"
    assert fake.trace("10.0.9.9", "10.96.0.2", dport=80).only.verdict == "ACCEPT"
