#!/usr/bin/env python3
"""Seeds for fuzz_sockdiag: real NETLINK_SOCK_DIAG dump replies.

Sets up sockets of every kind the parser reads (a listener with connections
waiting in accept(), a connected pair with bytes queued, an abstract name, a
bound path, a half-shut socket, TCP listener/connection, UDP over v4 and v6),
asks the kernel for the same dumps probes/sockdiag.c sends (unix: name, vfs,
peer, icons, rqlen, uid; inet: every state), keeps the messages of our own
sockets (small and free of other processes' names), and writes each reply as
the harness reads it: one selector byte (0 unix, 1 TCP, 2 UDP) and the bytes
of one recv(), ending with NLMSG_DONE.

    tests/fuzz/gen-sockdiag-seeds.py fixtures/fuzz/sockdiag
"""
import os
import socket
import struct
import sys
import tempfile

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
UDIAG_SHOW = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x40  # name vfs peer icons rqlen uid


def align4(n):
    return (n + 3) & ~3


def dump(body):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    hdr = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    s.sendto(hdr + body, (0, 0))
    msgs = []
    while True:
        data = s.recv(65536)
        off = 0
        while off + 16 <= len(data):
            ln, typ = struct.unpack_from("=IH", data, off)
            if typ == NLMSG_DONE:
                s.close()
                return msgs, data[off:off + ln]
            msgs.append(data[off:off + ln])
            off += align4(ln)


def unix_ino(msg):
    # nlmsghdr (16) + unix_diag_msg: family, type, state, pad, ino(u32)
    return struct.unpack_from("=I", msg, 16 + 4)[0]


def inet_ino(msg):
    # nlmsghdr (16) + inet_diag_msg: 4 bytes, id (48), expires, rqueue, wqueue, uid, inode
    return struct.unpack_from("=I", msg, 16 + 4 + 48 + 16)[0]


def write(out, name, selector, msgs, done):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([selector]) + b"".join(m + b"\0" * (align4(len(m)) - len(m)) for m in msgs) + done)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="fs-sockdiag-")
    keep = []
    # a listener with two connections waiting in accept()
    path = os.path.join(tmp, "l.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(4)
    c1 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c1.connect(path)
    c2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c2.connect(path)
    c2.send(b"queued")
    # a connected pair with bytes not yet read, one side half shut
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.send(b"x" * 300)
    b.shutdown(socket.SHUT_WR)
    # abstract datagram and seqpacket sockets
    ab = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ab.bind(b"\0forkscope-fuzz-seed")
    sp = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sp.bind(b"\0forkscope-fuzz-seq")
    sp.listen(1)
    keep += [lst, c1, c2, a, b, ab, sp]
    unix_inos = {os.fstat(s.fileno()).st_ino for s in keep}

    req = struct.pack("=BBxxIIIII", socket.AF_UNIX, 0, 0xFFFFFFFF, 0, UDIAG_SHOW, 0, 0)
    msgs, done = dump(req)
    mine = [m for m in msgs if unix_ino(m) in unix_inos]
    write(out, "unix-dump", 0, mine, done)
    # one message per seed: each attribute shape on its own
    for i, m in enumerate(mine):
        write(out, "unix-msg-%d" % i, 0, [m], done)
    # an NLMSG_ERROR reply (EINVAL), as for an unknown family
    err = struct.pack("=IHHIIi", 36, NLMSG_ERROR, 0, 1, 0, -22) + struct.pack("=IHHII", 16, SOCK_DIAG_BY_FAMILY, 0x301, 1, 0)
    write(out, "unix-error", 0, [], err)
    # a reply cut in the middle of a message (a short recv), no NLMSG_DONE
    if mine:
        with open(os.path.join(out, "unix-truncated"), "wb") as f:
            f.write(b"\0" + mine[0][: len(mine[0]) - 6])

    # inet: TCP listener + connection over IPv4, UDP over IPv4 and IPv6
    tl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tl.bind(("127.0.0.1", 0))
    tl.listen(1)
    tc = socket.create_connection(tl.getsockname())
    ta, _ = tl.accept()
    tc.send(b"y" * 100)
    u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u4.bind(("127.0.0.1", 0))
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        u6.bind(("::1", 0))
    except OSError:
        u6.close()
        u6 = None
    inet_socks = [tl, tc, ta, u4] + ([u6] if u6 else [])
    inet_inos = {os.fstat(s.fileno()).st_ino for s in inet_socks}
    for family, proto, sel, name in [(socket.AF_INET, socket.IPPROTO_TCP, 1, "tcp4"),
                                     (socket.AF_INET, socket.IPPROTO_UDP, 2, "udp4"),
                                     (socket.AF_INET6, socket.IPPROTO_UDP, 2, "udp6")]:
        # inet_diag_req_v2: family, protocol, ext, pad, states, id (48 bytes)
        req = struct.pack("=BBBxI", family, proto, 0, 0xFFFFFFFF) + b"\0" * 48
        try:
            msgs, done = dump(req)
        except OSError as e:
            print("inet %s: %s" % (name, e), file=sys.stderr)
            continue
        mine = [m for m in msgs if inet_ino(m) in inet_inos]
        write(out, name + "-dump", sel, mine, done)
    for s in keep + inet_socks:
        s.close()
    os.unlink(path)
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
