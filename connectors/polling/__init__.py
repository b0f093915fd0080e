"""Polling over TCP: the request/response bus and the pollers that publish readings.

* :mod:`connectors.polling.tcpbus` - one TCP connection to a meter or an RS-485-to-TCP
  serial server, one request at a time (as RS-485 requires), replies found by a codec's
  stream parser;
* :mod:`connectors.polling.protocols` - what a DL/T 645 or CJ/T 188 meter is asked and
  what its reply means (pure; the dispatcher uses it too);
* :mod:`connectors.polling.framed` - the DL/T 645 and CJ/T 188 pollers;
* :mod:`connectors.polling.modbus` - the Modbus polling loop over ``ModbusPoller``;
* :mod:`connectors.polling.loop` - the periodic loop every poller runs in.
"""
