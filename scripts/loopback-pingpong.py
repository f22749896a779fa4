#!/usr/bin/env python3
"""The machine's floor for a round trip: two processes bounce a 120-byte message over loopback
TCP at the rate the store's latency probe uses (100 per second), with nothing else in the way.
The store's add_item round trip is compared with this (docs/BENCHMARKS.md).

    python3 scripts/loopback-pingpong.py [COUNT]      # default 2000
"""
import multiprocessing
import socket
import sys
import time

MESSAGE = b"x" * 120
PERIOD_S = 0.01


def echo(listener):
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(4096):
        conn.sendall(data)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    listener = socket.create_server(("127.0.0.1", 0))
    peer = multiprocessing.Process(target=echo, args=(listener,))
    peer.start()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts_ms = []
    for _ in range(count):
        sent = time.perf_counter()
        client.sendall(MESSAGE)
        received = 0
        while received < len(MESSAGE):
            received += len(client.recv(4096))
        rtts_ms.append((time.perf_counter() - sent) * 1000)
        time.sleep(PERIOD_S)
    client.close()
    peer.join()
    rtts_ms.sort()
    pick = lambda q: rtts_ms[min(len(rtts_ms) - 1, int(len(rtts_ms) * q))]
    print(
        f"loopback TCP round trip between two processes, {count} at 100/s: "
        f"p50 {pick(0.5):.3f} / p90 {pick(0.9):.3f} / p99 {pick(0.99):.3f} / "
        f"max {rtts_ms[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
