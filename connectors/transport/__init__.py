"""Polling over TCP: the request/response bus and the pollers that publish readings.

* :mod:`connectors.transport.tcpbus` - one TCP connection to a meter or an RS-485-to-TCP
  serial server, one request at a time (as RS-485 requires), replies found by a codec's
  stream parser;
* :mod:`connectors.transport.dlt645` / :mod:`connectors.transport.cjt188` - pollers;
* :mod:`connectors.transport.modbus` - the Modbus polling loop over ``ModbusPoller``;
* :mod:`connectors.transport.loop` - the periodic loop every poller runs in.
"""
