"""Protocol adapters: one folder per protocol (MQTT first), each hiding its library behind gridmesh's contracts."""
