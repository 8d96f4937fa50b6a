#!/usr/bin/env node
/**
 * The lab's "internet" server, run inside sys-net: TCP echo and UDP echo on
 * port 7, HTTP on port 80 answering `peer=ADDRESS` (what this side of the
 * ProxyVM saw as the client's address).
 *
 *   test-server.js --log FILE [--address ADDR]
 *
 * Every connection and datagram is appended to FILE as one JSON line
 * (`{"proto","peer","data"}` with the first bytes of the payload), so probes
 * can ask "which source address did upstream see for my token?" without the
 * echo replies ever carrying that address back to the client.
 */
import { createSocket } from "node:dgram";
import { appendFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";

/** RFC 862 echo and plain HTTP: the well-known ports, so captures read naturally */
const ECHO_PORT = 7;
const HTTP_PORT = 80;
/** how much of a payload is logged: enough for a probe's token */
const LOGGED_BYTES = 128;

function parseArgs(argv: readonly string[]): { log: string; address: string } {
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const log = value("--log");
  if (log === undefined) {
    process.stderr.write("usage: test-server.js --log FILE [--address ADDR]\n");
    process.exit(2);
  }
  // Bound to one address, UDP replies leave from it (bound to 0.0.0.0 they would
  // leave from the outgoing link's address, and a connected client drops them).
  return { log, address: value("--address") ?? "0.0.0.0" };
}

const { log, address } = parseArgs(process.argv.slice(2));

function record(entry: Record<string, unknown>): void {
  appendFileSync(log, `${JSON.stringify({ time: Date.now(), ...entry })}\n`);
}

function peerOf(address: string | undefined): string {
  // Node reports IPv4 peers of dual-stack sockets as ::ffff:a.b.c.d
  return (address ?? "").replace(/^::ffff:/, "");
}

const tcp = createTcpServer((socket) => {
  const peer = peerOf(socket.remoteAddress);
  let logged = false;
  socket.on("data", (chunk) => {
    if (!logged) {
      record({ proto: "tcp", peer, data: chunk.subarray(0, LOGGED_BYTES).toString("utf8") });
      logged = true;
    }
    socket.write(chunk);
  });
  socket.on("error", () => socket.destroy());
});

const udp = createSocket("udp4");
udp.on("message", (message, remote) => {
  record({ proto: "udp", peer: remote.address, data: message.subarray(0, LOGGED_BYTES).toString("utf8") });
  udp.send(message, remote.port, remote.address);
});

const http = createHttpServer((request, response) => {
  const peer = peerOf(request.socket.remoteAddress);
  record({ proto: "http", peer, data: request.url ?? "" });
  response.writeHead(200, { "content-type": "text/plain", connection: "close" });
  response.end(`peer=${peer}\n`);
});

let listening = 0;
function ready(): void {
  listening += 1;
  if (listening === 3) {
    record({ event: "listening" });
    process.stderr.write(`INFO test server listening echo=${ECHO_PORT} http=${HTTP_PORT}\n`);
  }
}

tcp.listen(ECHO_PORT, address, ready);
udp.bind(ECHO_PORT, address, ready);
http.listen(HTTP_PORT, address, ready);
process.on("SIGTERM", () => process.exit(0));
