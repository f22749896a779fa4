"""Drives the server with phxsocket, a Phoenix client from PyPI that sends V1 frames with integer
refs and matches replies by `==` on the ref: it joins a channel, pushes an event and waits for
the reply. Prints one line starting with OK on success; exits non-zero otherwise.

    python3 phxsocket_echo.py ws://127.0.0.1:4000/socket/websocket
"""

import sys

import phxsocket

LIMIT = 10


def wait(sent, what):
    if not sent.event.wait(LIMIT):
        sys.exit(f"no reply to {what} within {LIMIT} s (refs not echoed as sent?)")
    return sent.message


def main():
    socket = phxsocket.Client(sys.argv[1])
    socket.connect()
    joined = wait(socket.push("room:py", "phx_join", {}, reply=True), "phx_join")
    if joined.get("status") != "ok":
        sys.exit(f"join refused: {joined}")
    echoed = wait(socket.push("room:py", "echo", {"from": "python"}, reply=True), "echo")
    if echoed.get("response", {}).get("echo") != {"from": "python"}:
        sys.exit(f"unexpected reply: {echoed}")
    print(f"OK joined={joined} echoed={echoed}")
    socket.close()


if __name__ == "__main__":
    main()
