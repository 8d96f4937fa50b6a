#!/usr/bin/env python3
"""Real traffic for the firewall tests, run inside a namespace with nsenter.

  probe.py serve --tcp 22,80 --udp 53,5000 --bind A,B   TCP echo on ::, UDP echo on each address; prints "ready"
  probe.py probe '<json list>'                 one result per probe, as a JSON list on stdout
  probe.py session SRC DST PORT                one TCP connection; a line in → "ok"/"timeout"/... out
  probe.py push PORT / watch SRC DST PORT      a flow where only the server sends ("tick" every 100 ms)

A probe is {"kind": "tcp"|"udp"|"icmp", "src": ADDR, "dst": ADDR, "port": P, "type": T, "timeout": S}.
Results: "ok", "admin-prohibited" (ICMP type 3 code 13 / ICMPv6 type 1 code 1, seen as EHOSTUNREACH
by sockets), "refused", "timeout", or another errno name / "icmp-T-C".
Python because Node has no raw sockets (ICMP types) and one process can run many probes.
"""
import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time


def serve(tcp_ports, udp_ports, addresses):
    def tcp_loop(port):
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        srv.bind(("::", port))
        srv.listen(1024)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn):
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    def udp_loop(address, port):
        # one socket per address: a reply must come from the address the client sent to
        srv = socket.socket(family_of(address), socket.SOCK_DGRAM)
        srv.bind((address, port))
        while True:
            data, peer = srv.recvfrom(4096)
            srv.sendto(data, peer)

    threads = [threading.Thread(target=tcp_loop, args=(p,), daemon=True) for p in tcp_ports]
    threads += [threading.Thread(target=udp_loop, args=(a, p), daemon=True) for p in udp_ports for a in addresses]
    for th in threads:
        th.start()
    time.sleep(0.2)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def errno_result(err):
    # ICMP "communication administratively prohibited" reaches sockets as EHOSTUNREACH (IPv4)
    # and EACCES (ICMPv6 type 1 code 1, icmpv6_err_convert)
    if err in (errno.EHOSTUNREACH, errno.EACCES):
        return "admin-prohibited"
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINPROGRESS):
        return "timeout"
    return errno.errorcode.get(err, str(err))


def probe_tcp(p):
    s = socket.socket(family_of(p["dst"]), socket.SOCK_STREAM)
    s.settimeout(p.get("timeout", 2))
    try:
        s.bind((p["src"], 0))
        s.connect((p["dst"], p["port"]))
        s.sendall(b"hello")
        return "ok" if s.recv(16) == b"hello" else "bad-echo"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno_result(e.errno)
    finally:
        s.close()


def probe_udp(p):
    s = socket.socket(family_of(p["dst"]), socket.SOCK_DGRAM)
    s.settimeout(p.get("timeout", 2))
    try:
        s.bind((p["src"], 0))
        s.connect((p["dst"], p["port"]))
        s.send(b"hello")
        return "ok" if s.recv(16) == b"hello" else "bad-echo"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno_result(e.errno)
    finally:
        s.close()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


REPLIES4 = {8: 0, 13: 14, 15: 16, 17: 18}
REPLIES6 = {128: 129}


def probe_icmp(p):
    v6 = ":" in p["dst"]
    kind = p.get("type", 128 if v6 else 8)
    ident = (os.getpid() + int(time.time() * 1000)) & 0xFFFF
    body = struct.pack("!HH", ident, 1) + (b"\0" * 12 if kind == 13 else b"probe")
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                      socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    try:
        s.bind((p["src"], 0))
        header = struct.pack("!BBH", kind, 0, 0)
        packet = header + body
        if not v6:  # the kernel computes the ICMPv6 checksum itself
            packet = struct.pack("!BBH", kind, 0, checksum(packet)) + body
        s.sendto(packet, (p["dst"], 0))
        deadline = time.time() + p.get("timeout", 2)
        while True:
            left = deadline - time.time()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return "timeout"
            data = s.recv(2048)
            icmp = data if v6 else data[(data[0] & 15) * 4:]
            rtype, code = icmp[0], icmp[1]
            replies = REPLIES6 if v6 else REPLIES4
            if rtype == replies.get(kind, -1) and struct.unpack("!H", icmp[4:6])[0] == ident:
                return "ok"
            error_type = 1 if v6 else 3
            if rtype == error_type:
                inner = icmp[8:]
                inner_icmp = inner[40:] if v6 else inner[(inner[0] & 15) * 4:]
                if len(inner_icmp) >= 6 and struct.unpack("!H", inner_icmp[4:6])[0] == ident:
                    prohibited = (v6 and code == 1) or (not v6 and code == 13)
                    return "admin-prohibited" if prohibited else "icmp-%d-%d" % (rtype, code)
    except OSError as e:
        return errno_result(e.errno)
    finally:
        s.close()


def session(src, dst, port):
    """One long-lived TCP connection: each line on stdin is sent; prints ok / timeout / errno per line."""
    s = socket.socket(family_of(dst), socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect((dst, int(port)))
    s.settimeout(1.5)
    print("connected", flush=True)
    for line in sys.stdin:
        try:
            s.sendall(line.encode())
            # echoes of earlier lines held back by a cut may arrive first: read up to this line's echo
            data = b""
            closed = False
            while not data.endswith(line.encode()):
                chunk = s.recv(4096)
                if not chunk:
                    closed = True
                    break
                data += chunk
            print("closed" if closed else "ok", flush=True)
        except socket.timeout:
            print("timeout", flush=True)
        except OSError as e:
            print(errno_result(e.errno), flush=True)


def push(port):
    """Server side of a push-only flow: every connection gets "tick" lines every 100 ms."""
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", int(port)))
    srv.listen(16)

    def ticks(conn):
        try:
            while True:
                conn.sendall(b"tick\n")
                time.sleep(0.1)
        except OSError:
            conn.close()

    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=ticks, args=(conn,), daemon=True).start()


def watch(src, dst, port):
    """Client side of a push-only flow: never sends; prints each line it receives."""
    s = socket.socket(family_of(dst), socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect((dst, int(port)))
    print("connected", flush=True)
    buffered = b""
    while True:
        data = s.recv(4096)
        if not data:
            return
        buffered += data
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            print(line.decode(), flush=True)


def main():
    if sys.argv[1] == "serve":
        args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
        ports = lambda text: [int(x) for x in text.split(",") if x]
        serve(ports(args.get("--tcp", "")), ports(args.get("--udp", "")), args.get("--bind", "").split(","))
    elif sys.argv[1] == "push":
        push(sys.argv[2])
    elif sys.argv[1] == "watch":
        watch(*sys.argv[2:5])
    elif sys.argv[1] == "session":
        session(*sys.argv[2:5])
    elif sys.argv[1] == "probe":
        probes = json.loads(sys.argv[2])
        run = {"tcp": probe_tcp, "udp": probe_udp, "icmp": probe_icmp}
        print(json.dumps([run[p["kind"]](p) for p in probes]))


main()
