"""Both stand-in gateways on one loopback port (``meterflow gateway standin``; tests):
WeChat Pay's paths (``/v3/...``, ``/connect/...``, ``/sns/...``) and Alipay's
``/gateway.do`` side by side, served by uvicorn in a thread."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from connectors.gateways.standin_alipay import AlipayStandin
from connectors.gateways.standin_wechat import WeChatStandin


class Standins:
    """The two stand-ins and their server; ``url`` once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 retry_s: tuple[float, ...] = (1.0, 2.0, 4.0)) -> None:
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.wechat = WeChatStandin(base_url=self.url, retry_s=retry_s)
        self.alipay = AlipayStandin(base_url=self.url, retry_s=retry_s)
        app = FastAPI(title="MeterFlow stand-in gateways", docs_url=None, redoc_url=None,
                      openapi_url=None)
        app.include_router(self.wechat.router)
        app.include_router(self.alipay.router)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning", access_log=False))
        self._thread: threading.Thread | None = None

    def start(self) -> Standins:
        self._thread = threading.Thread(target=self.server.run, name="standins", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the stand-in gateways did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


def standin_settings(standins: Standins) -> dict[str, str]:
    """The METERFLOW_* settings that point MeterFlow at the stand-ins' URLs."""
    return {"METERFLOW_WECHAT_API_URL": standins.url,
            "METERFLOW_WECHAT_OAUTH_URL": standins.url,
            "METERFLOW_WECHAT_SNS_URL": standins.url,
            "METERFLOW_ALIPAY_GATEWAY_URL": f"{standins.url}/gateway.do"}
