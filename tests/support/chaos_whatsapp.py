"""WhatsApp and the phone for the chaos tests, inside the real engine child process.

The child is the production one (`child_main`: its pipe, ledger, fencing and exit codes); only
neonize's client is replaced by this fake, which the test steers through Redis keys of the
session (`chaos_key`): `offline` (dials fail), `hang` (a dial never answers), and a list of
faults (`drop`, `logged_out`, `stream_replaced`, `banned`). Whatever it "sends" is appended to
WhatsApp's own record of the session, which the tests read to prove nothing went out twice.
"""

import time

import redis
from neonize import events as neonize_events

from sessions_app.engines.whatsmeow.child import ChildConfig, child_main
from tests.support.fake_neonize import FakeNeonizeClient


def chaos_key(namespace: str, session_id: str, *parts: str) -> str:
    return ":".join([namespace, "chaos", session_id, *parts])


class ChaosWhatsApp(FakeNeonizeClient):
    def __init__(self, config: ChildConfig) -> None:
        super().__init__(device=config.device_jid)
        self.redis = redis.Redis.from_url(config.redis_url, socket_timeout=5)
        self.namespace, self.session_id = config.namespace, config.session_id

    def _key(self, *parts: str) -> str:
        return chaos_key(self.namespace, self.session_id, *parts)

    def connect(self) -> None:
        if self.redis.exists(self._key("hang")):
            time.sleep(3600)  # the dial never answers
        if self.redis.exists(self._key("offline")):
            raise ConnectionError("failed to dial whatsapp web websocket (chaos: offline)")
        super().connect()
        while True:  # connected, until a fault ends the connection
            popped = self.redis.blpop([self._key("faults")], timeout=0.5)
            if popped is None:
                if self.redis.exists(self._key("offline")):
                    self.drop()
                    return
                continue
            fault = popped[1].decode()
            if fault == "drop":
                self.drop()
                return
            self.end(fault)
            return

    def send_message(self, to, message):
        response = super().send_message(to, message)
        self.redis.rpush(self._key("whatsapp"), message if isinstance(message, str) else "media")
        return response


def chaos_child(config: ChildConfig, conn) -> None:
    child_main(config, conn, client_factory=ChaosWhatsApp, events_module=neonize_events)
