"""Payment gateways: WeChat Pay API v3 and Alipay (docs/tenant.md).

``model`` (the gateway-neutral trade and refund records, the order check), ``wechat_protocol``
and ``alipay_protocol`` (signatures, notification verification, bill formats: pure, bytes in,
records out), ``clients`` (the maintained SDKs speaking to a gateway), ``standin_wechat`` and
``standin_alipay`` (loopback gateways speaking the same protocols, for local use and tests).
"""
