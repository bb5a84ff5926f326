"""Broker URLs: defaults, credentials, TLS options, and errors that name the bad part."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmesh.adapters.mqtt.url import MqttUrlError, parse_mqtt_url


def test_plain_url_defaults_to_port_1883_without_tls() -> None:
    url = parse_mqtt_url("mqtt://127.0.0.1")
    assert (url.host, url.port, url.tls, url.username, url.password) == ("127.0.0.1", 1883, False, None, None)


def test_credentials_are_percent_decoded_and_hidden_from_repr() -> None:
    url = parse_mqtt_url("mqtt://centre:p%40ss%3Aw@broker.example:1884?client_id=centre-2")
    assert (url.username, url.password, url.port, url.client_id) == ("centre", "p@ss:w", 1884, "centre-2")
    assert "p@ss" not in repr(url) and url.display() == "mqtt://centre@broker.example:1884"


def test_mqtts_uses_port_8883_and_an_optional_ca_file(tmp_path: Path) -> None:
    assert parse_mqtt_url("mqtts://broker").port == 8883
    assert parse_mqtt_url("mqtts://broker").ca_path is None  # the system CA store
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = parse_mqtt_url(f"mqtts://broker:9000?ca={ca}")
    assert (url.tls, url.port, url.ca_path) == (True, 9000, ca)


def test_ipv6_host_is_displayed_in_brackets() -> None:
    url = parse_mqtt_url("mqtt://[::1]:1883")
    assert url.host == "::1" and url.display() == "mqtt://[::1]:1883"


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("http://broker", "must start with mqtt://"),
        ("broker:1883", "must start with mqtt://"),
        ("mqtt://", "no host"),
        ("mqtt://broker:99999", "cannot parse"),
        ("mqtt://broker:0", "port 0"),
        ("mqtt://broker/topic", "has a path"),
        ("mqtt://broker?qos=1", "unknown option"),
        ("mqtt://broker?client_id=", "exactly one non-empty value"),
        ("mqtt://broker?client_id=a&client_id=b", "exactly one non-empty value"),
        ("mqtt://broker?ca=/etc/hostname", "without TLS"),
        ("mqtts://broker?ca=/no/such/ca.pem", "does not exist"),
    ],
)
def test_bad_urls_raise_an_error_naming_the_problem(text: str, part: str) -> None:
    with pytest.raises(MqttUrlError, match=part):
        parse_mqtt_url(text)
