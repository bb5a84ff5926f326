"""MQTT adapter: the gridmesh bus over a broker, with store-and-forward on the field side."""

from gridmesh.adapters.mqtt.buffer import BufferedMessage, DiskBuffer
from gridmesh.adapters.mqtt.bus import BusCounters, MqttBus, MqttBusError
from gridmesh.adapters.mqtt.url import MqttUrl, MqttUrlError, parse_mqtt_url

__all__ = [
    "BufferedMessage",
    "BusCounters",
    "DiskBuffer",
    "MqttBus",
    "MqttBusError",
    "MqttUrl",
    "MqttUrlError",
    "parse_mqtt_url",
]
