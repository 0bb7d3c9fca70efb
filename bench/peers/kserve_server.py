"""KServe's ModelServer with a custom `kserve.Model` running the same model the same way.

Runs in KServe's own venv (`make peer-kserve`), from the repo root:
`.venv-peers/kserve/bin/python -m bench.peers.kserve_server --http_port 8080 --model_name fb-lstm`
with the bundle from PEER_STORE_DIR and friends. Requests go to KServe's own v1 route,
`POST /v1/models/<name>:predict`, with our /predict body (`{"closes": [...]}`): KServe's
router, decoding and model call path all run, and the bytes on the wire are those every other
server gets.
"""

from __future__ import annotations

from typing import Any

import kserve
from kserve.errors import InvalidInput

from bench.peers.model import PeerModel


class StockModel(kserve.Model):  # type: ignore[misc]
    """The bundle's next close and interval for one window of closes."""

    def __init__(self, name: str):
        super().__init__(name)
        self.model: PeerModel | None = None

    def load(self) -> bool:
        self.model = PeerModel.from_env()
        self.ready = True
        return bool(self.ready)

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        assert self.model is not None, "predict before load"
        try:
            return self.model.answer(payload["closes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"expected {{'closes': [{self.model.window} closes]}}: {exc}"
            ) from exc


def main() -> None:
    # kserve parses its own options (--http_port, --model_name, ...) from sys.argv on import.
    model = StockModel(kserve.model_server.args.model_name)
    model.load()
    # Only HTTP is measured: no gRPC server on a second port.
    kserve.ModelServer(enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
