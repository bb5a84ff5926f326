"""Chargers bound to buses and sites from a scenario network; identities that cannot be OCPP ones refused."""

from __future__ import annotations

import pytest

from gridmesh.adapters.ocpp import ChargerBinding, ChargerRegistry, registry_from_network
from gridmesh.model.elements import Bus, EvCharger, Site
from gridmesh.model.network import Network


def test_registry_from_network_binds_buses_and_sites():
    network = Network.from_elements(
        [
            Bus(id="b1", vn_kv=0.4),
            Bus(id="b2", vn_kv=0.4),
            Bus(id="b3", vn_kv=0.4),
            EvCharger(id="home-1", bus="b1", p_kw=11),
            EvCharger(id="depot", bus="b2", p_kw=22, connectors=4),
            EvCharger(id="outside", bus="b3", p_kw=11),
            EvCharger(id="retired", bus="b3", p_kw=11, in_service=False),
            Site(id="mg-a", buses=("b1",)),
            Site(id="mg-b", buses=("b2",)),
            Site(id="west", level=2, members=("mg-a", "mg-b")),
        ]
    )
    registry = registry_from_network(network)
    assert sorted(registry) == ["depot", "home-1", "outside"]
    assert registry["depot"] == ChargerBinding("depot", "b2", 22.0, 4, ("mg-b", "west"))
    assert registry["outside"].sites == ()
    assert sorted(registry.at_site("west")) == ["depot", "home-1"]


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 49, "weiß", "a b"])
def test_identities_must_fit_an_ocpp_url(bad):
    with pytest.raises(ValueError, match=r"ev_chargers\[.*\]\.id: an OCPP identity"):
        ChargerRegistry([ChargerBinding(bad, "b", 11.0, 1)])
    with pytest.raises(ValueError, match="listed twice"):
        ChargerRegistry([ChargerBinding("a", "b", 11.0, 1), ChargerBinding("a", "c", 11.0, 1)])
