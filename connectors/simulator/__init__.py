"""Simulated meters for demos, tests and benchmarks.

* :mod:`~connectors.simulator.profiles` - daily load profiles and the TOU bands (pure);
* :mod:`~connectors.simulator.clock` - the injectable, speed-up-able clock;
* :mod:`~connectors.simulator.meter` - one meter's registers and relay/valve (pure);
* :mod:`~connectors.simulator.spec` - fleet declarations as data (YAML/dict) -> meters;
* :mod:`~connectors.simulator.modbus_server` / :mod:`~connectors.simulator.frame_server` /
  :mod:`~connectors.simulator.mqtt_gateway` - the protocol faces;
* :mod:`~connectors.simulator.fleet` - starts a mixed fleet and writes the fleet file.
"""
