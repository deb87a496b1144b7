"""A DNS server on 127.0.0.1 for HAProxy's resolvers in tests: the names a cluster's DNS would
answer (headless and ClusterIP Services) answered from a table."""

from __future__ import annotations

import socket
import threading


class Dns:
    """Answers A queries from `records` (name -> addresses), NXDOMAIN for any other name, and
    keeps every name it was asked for in `queries`."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.queries: list[str] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = int(self.socket.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            labels, at = [], 12
            while query[at]:
                labels.append(query[at + 1 : at + 1 + query[at]].decode().lower())
                at += 1 + query[at]
            name = ".".join(labels)
            self.queries.append(name)
            qtype = int.from_bytes(query[at + 1 : at + 3], "big")
            question = query[12 : at + 5]
            addresses = self.records.get(name, []) if qtype == 1 else []
            flags = 0x8580 if name in self.records else 0x8583  # NXDOMAIN otherwise
            header = query[:2] + flags.to_bytes(2, "big") + (1).to_bytes(2, "big")
            header += len(addresses).to_bytes(2, "big") + bytes(4)
            answers = b"".join(
                b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04" + socket.inet_aton(address)
                for address in addresses
            )
            self.socket.sendto(header + question + answers, client)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.socket.close()


def use_dns(files: dict[str, str], dns: Dns) -> dict[str, str]:
    """The compiled files with the `resolvers kubedns` section asking `dns` instead of the
    machine's resolv.conf."""
    return {
        name: text.replace("parse-resolv-conf", f"nameserver test 127.0.0.1:{dns.port}")
        for name, text in files.items()
    }
