#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/).

Each seed is a real, well-formed input laid out as the decoders' encoders write it (the frames of
the codec tests and docs, tokens signed like Phoenix.Token, tracker gossip and pubsub frames), so
that the fuzzers start from inputs that pass the first checks. Run it from anywhere; it replaces
the seed files it owns.
"""
import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Kept equal to fuzz/src/lib.rs.
SECRET_KEY_BASE = b"fuzz" * 16
NOW_MS = 1_700_000_000_000
TOKEN_SALT = b"user socket"
CART_SALT = b"shopping cart serialization"


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ------------------------------------------------------------------ codec

V1_TEXT = [
    '{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}',
    '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}',
    '{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":3,"join_ref":"1"}',
]
V2_TEXT = [
    '["3","3","room:lobby","phx_join",{"nick":"ann"}]',
    '["3","4","room:lobby","new_msg",{"body":"hi"}]',
    '[null,"5","phoenix","heartbeat",{}]',
    '["1","2","cart:abc","add_item",{"item_id":12,"serialized":"SFMyNTY.g2gD.x"}]',
    '[null,null,"room:lobby","new_msg",{"body":"h\\u00e9\\n"}]',
]


def binary_push(join_ref, ref, topic, event, payload):
    fields = [join_ref, ref, topic, event]
    return bytes([0] + [len(f) for f in fields]) + b"".join(fields) + payload


def binary_reply(join_ref, ref, topic, status, payload):
    fields = [join_ref, ref, topic, status]
    return bytes([1] + [len(f) for f in fields]) + b"".join(fields) + payload


def binary_broadcast(topic, event, payload):
    return bytes([2, len(topic), len(event)]) + topic + event + payload


CLIENT_PUSHES = [
    binary_push(b"3", b"4", b"room:lobby", b"upload", b"\x00\x01\x02\xff"),
    binary_push(b"", b"", b"phoenix", b"heartbeat", b""),
]

for i, text in enumerate(V1_TEXT):
    write("codec_server_decode", f"v1_text_{i}", b"\x00" + text.encode())
    write("codec_client_decode", f"v1_text_{i}", b"\x00" + text.encode())
for i, text in enumerate(V2_TEXT):
    write("codec_server_decode", f"v2_text_{i}", b"\x01" + text.encode())
    write("codec_server_decode", f"v2_to_v1_{i}", b"\x05" + text.encode())
    write("codec_client_decode", f"v2_text_{i}", b"\x01" + text.encode())
for i, frame in enumerate(CLIENT_PUSHES):
    write("codec_server_decode", f"v2_binary_{i}", b"\x02" + frame)
for i, vsn in enumerate(["1.0.0", "2.0.0", "2.0.1-rc.1+build", "3.0.0"]):
    write("codec_server_decode", f"vsn_{i}", b"\x04" + vsn.encode())
write("codec_client_decode", "v2_reply",
      b"\x01" + b'["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]')
write("codec_client_decode", "v1_reply",
      b"\x00" + b'{"topic":"room:lobby","event":"phx_reply","payload":{"status":"error","response":{"reason":"unmatched topic"}},"ref":"7"}')
write("codec_client_decode", "v2_close", b"\x01" + b'["3","3","room:lobby","phx_close",{}]')
write("codec_client_decode", "binary_push",
      b"\x02" + bytes([0, 1, 10, 6]) + b"3room:lobbyupload" + b"\x01\x02")
write("codec_client_decode", "binary_reply",
      b"\x02" + binary_reply(b"3", b"4", b"room:lobby", b"ok", b"\x10\x20"))
write("codec_client_decode", "binary_broadcast",
      b"\x02" + binary_broadcast(b"room:lobby", b"frame", b"\xde\xad\xbe\xef"))

# ------------------------------------------------------------------ tokens (ETF + Phoenix.Token)


def etf_term(t):
    if isinstance(t, bool):
        name = b"true" if t else b"false"
        return bytes([119, len(name)]) + name
    if isinstance(t, int):
        if 0 <= t <= 255:
            return bytes([97, t])
        if -(2**31) <= t < 2**31:
            return b"b" + struct.pack(">i", t)
        mag = abs(t).to_bytes((abs(t).bit_length() + 7) // 8, "little")
        return bytes([110, len(mag), 1 if t < 0 else 0]) + mag
    if isinstance(t, float):
        return b"F" + struct.pack(">d", t)
    if isinstance(t, str):  # an atom
        name = t.encode()
        return bytes([119, len(name)]) + name
    if isinstance(t, bytes):  # a binary (Elixir string)
        return b"m" + struct.pack(">I", len(t)) + t
    if isinstance(t, tuple):
        return bytes([104, len(t)]) + b"".join(etf_term(x) for x in t)
    if isinstance(t, dict):
        return b"t" + struct.pack(">I", len(t)) + b"".join(
            etf_term(k) + etf_term(v) for k, v in t.items())
    if isinstance(t, list):
        if not t:
            return b"j"
        if all(isinstance(x, int) and 0 <= x <= 255 for x in t):
            return b"k" + struct.pack(">H", len(t)) + bytes(t)
        return b"l" + struct.pack(">I", len(t)) + b"".join(etf_term(x) for x in t) + b"j"
    raise TypeError(t)


def etf(t):
    return b"\x83" + etf_term(t)


def derive_key(salt):
    return hashlib.pbkdf2_hmac("sha256", SECRET_KEY_BASE, salt, 1000, 32)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key, payload):
    signed = "SFMyNTY." + b64(payload)
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return signed + "." + b64(mac)


def token(salt, data, max_age):
    return sign(derive_key(salt), etf((data, NOW_MS - 1000, max_age)))


# The doc example of channels_protocol::token, to prove this encoder signs like the Rust one.
assert sign(hashlib.pbkdf2_hmac("sha256", b"a" * 64, b"user auth", 1000, 32),
            etf((1, 1_700_000_000_000, 86_400))) == \
    "SFMyNTY.g2gDYQFuBgAAaOXPiwFiAAFRgA.9gShOaPCMVYklRMi2bi1jGGGEQ1n5rsnhPvGUJk-QLQ"

# The tokens of sneakers23_fuzz::signed_tokens, under each max-age mode of the target.
GENUINE = [
    token(TOKEN_SALT, 42, 86_400),
    token(TOKEN_SALT, b"user:1", 86_400),
    token(TOKEN_SALT, [3, 1, 2], 604_800),
    token(TOKEN_SALT, 7, "infinity"),
]
for i, t in enumerate(GENUINE):
    for mode in range(4):
        write("token_verify", f"genuine_{i}_{mode}", bytes([mode]) + t.encode())
write("token_verify", "other_salt", b"\x00" + token(b"other", 42, 86_400).encode())
write("token_verify", "truncated", b"\x00" + GENUINE[0][:-3].encode())

TERMS = [
    (42, NOW_MS - 1000, 86_400),
    (b"user:1", NOW_MS - 1000, 86_400),
    ([3, 1, 2], NOW_MS - 1000, 604_800),
    ([300, -1, 2**40], NOW_MS - 1000, "infinity"),
    (7, NOW_MS - 1000),
    {"data": 7, "signed": NOW_MS - 1000},
    ({"user_id": 1, "admin": True}, NOW_MS + 5000, 60.5),
    ([(1, b"a"), 1.5, []], NOW_MS - 10**9, 86_400),
]
for i, t in enumerate(TERMS):
    write("token_etf", f"term_{i}", etf(t))
# A compressed term: 131, 80, inflated size, zlib data.
import zlib  # noqa: E402
inner = etf_term(([1, 2, 3] * 20, NOW_MS - 1000, 86_400))
write("token_etf", "compressed", b"\x83P" + struct.pack(">I", len(inner)) + zlib.compress(inner))

CART_KEY = derive_key(CART_SALT)
write("cart_token", "genuine",
      b"\x00" + sign(CART_KEY, etf(([3, 1, 2], NOW_MS - 1000, 604_800))).encode())
write("cart_token", "expired",
      b"\x00" + sign(CART_KEY, etf(([3, 1, 2], NOW_MS - 8 * 86_400_000, 604_800))).encode())
write("cart_token", "tampered",
      b"\x00" + sign(CART_KEY, etf(([3, 1, 2], NOW_MS - 1000, 604_800))).encode()[:-1] + b"A")
for i, ids in enumerate([[3, 1, 2], [5, 5, 4], [], [1000, 2**33, -1]]):
    write("cart_token", f"payload_{i}", b"\x01" + etf((ids, NOW_MS - 1000, 604_800)))

# ------------------------------------------------------------------ tracker gossip (postcard)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pstr(s):
    s = s.encode()
    return varint(len(s)) + s


def pvec(items):
    return varint(len(items)) + b"".join(items)


def clock(pairs):
    return pvec([varint(r) + varint(v) for r, v in pairs])


def phx_ref(time, node, count):
    return struct.pack(">QHH", time, node, count)  # any 12 bytes


def value(dot, pid_node, pid, key, meta, ref, prev):
    out = varint(dot)
    out += b"\x00" if pid_node is None else b"\x01" + varint(pid_node)
    out += varint(pid) + pstr(key) + pstr(meta) + ref
    out += b"\x00" if prev is None else b"\x01" + prev
    return out


def part(replica, cloud, topics):
    return varint(replica) + pvec([varint(d) + varint(n) for d, n in cloud]) + pvec(
        [pstr(t) + pvec(vals) for t, vals in topics])


def delta(start, end, parts):
    return clock(start) + clock(end) + pvec(parts)


A = ("node-a", 1_700_000_000_000_000 << 16)
B = ("b", 9)
REFS = pvec([pstr(n) + varint(v) for n, v in (A, B)])
META = '{"online_at":"1700000000","page":"/"}'
DELTA = delta([(0, 10)], [(0, 13)], [
    part(0, [(11, 2), (3, 1)], [
        ("room:a", [value(12, None, 1012, "user:12", META, phx_ref(1, 77, 12), None)]),
        ("cart_tracker", [value(11, 42, 1011, "cart:x", '{"items":3}', phx_ref(2, 77, 11),
                                phx_ref(1, 1, 2))]),
    ]),
    part(1, [(5, 1)], []),
])


def envelope(body):
    return b"\x01" + REFS + varint(0) + body


write("tracker_wire", "heartbeat", envelope(varint(0) + clock([(0, 5), (1, 2)]) + b"\x01" + DELTA))
write("tracker_wire", "heartbeat_empty", envelope(varint(0) + clock([(0, 5)]) + b"\x00"))
write("tracker_wire", "transfer_req", envelope(varint(1) + varint(7) + clock([(0, 5), (1, 2)])))
write("tracker_wire", "transfer_ack_delta", envelope(varint(2) + varint(7) + DELTA))
write("tracker_wire", "transfer_ack_full", envelope(
    varint(3) + varint(8) + clock([(0, 13), (1, 5)]) + pvec([
        part(0, [(11, 2)], [("room:a", [value(12, None, 1012, "user:12", META,
                                              phx_ref(1, 77, 12), None)])]),
    ])))
write("tracker_wire", "permdown", envelope(varint(4)))

# ------------------------------------------------------------------ pubsub


def frame(topic, sender, payload):
    out = bytes([1, 1 if sender else 0])
    if sender:
        out += struct.pack(">QQ", *sender)
    return out + struct.pack(">H", len(topic)) + topic + payload


FRAMES = [
    frame(b"room:lobby", None, b'{"a":1}'),
    frame(b"room:lobby", (7, 9), b'[null,null,"room:lobby","new_msg",{"body":"hi"}]'),
    frame(b"phx_presence:cart_tracker_shard0", (1, 2), b"\x01\x02\x03"),
    frame(b"", None, b""),
]
for i, f in enumerate(FRAMES):
    write("pubsub_frame", f"frame_{i}", f)


def whole(origin, f):
    return bytes([1, 0]) + struct.pack(">Q", origin) + f


def chunks(origin, msg_id, f, piece):
    parts = [f[i:i + piece] for i in range(0, len(f), piece)]
    return [bytes([1, 1]) + struct.pack(">QQII", origin, msg_id, i, len(parts)) + p
            for i, p in enumerate(parts)]


def records(messages, advance=0):
    return b"".join(bytes([advance, len(m)]) + m for m in messages)


write("pubsub_envelope", "whole", records([whole(5, FRAMES[1])]))
write("pubsub_envelope", "chunks_in_order", records(chunks(5, 1, FRAMES[1], 20)))
write("pubsub_envelope", "chunks_reversed", records(list(reversed(chunks(6, 2, FRAMES[1], 16)))))
write("pubsub_envelope", "chunks_expire",
      records(chunks(5, 3, FRAMES[1], 30)[:1]) + records(chunks(5, 3, FRAMES[1], 30)[1:], 31))
