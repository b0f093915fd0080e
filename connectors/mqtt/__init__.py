"""MQTT: the contract of pushing meters and gateways, the bridge to Kafka, broker clients.

* :mod:`connectors.mqtt.contract` - topics and payloads (pure);
* :mod:`connectors.mqtt.client` - paho-mqtt client construction (MQTT 5, credentials);
* :mod:`connectors.mqtt.bridge` - ``meters/+/readings`` -> raw readings / dead letters.
"""
