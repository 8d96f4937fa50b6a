#!/usr/bin/env node
/**
 * Runs inside a client namespace (`nsenter --net=... node net-client.js JSON`)
 * and performs a list of small network exchanges, so one process start covers
 * a whole probe step. Prints one JSON array of results.
 *
 * An action is `{ kind: "tcp"|"udp"|"http", host, port, data?, source?, timeoutMs? }`.
 */
import { createSocket } from "node:dgram";
import { request } from "node:http";
import { connect } from "node:net";
import { z } from "zod";
import type { NetResult } from "./net.js";

const actionSchema = z.object({
  kind: z.enum(["tcp", "udp", "http"]),
  host: z.string(),
  port: z.number().int().min(1).max(65535),
  data: z.string().default(""),
  source: z.string().optional(),
  timeoutMs: z.number().int().positive().default(1000),
  pauseMs: z.number().int().min(0).default(0),
});
const specSchema = z.object({ parallel: z.boolean().default(false), actions: z.array(actionSchema) });

type Action = z.output<typeof actionSchema>;

function errorCode(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code ?? e.message;
}

function tcp(a: Action): Promise<NetResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: a.host, port: a.port, ...(a.source ? { localAddress: a.source } : {}) });
    let reply = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(reply.length > 0 ? { ok: reply === a.data, reply } : { ok: false, error: "ETIMEDOUT" });
    }, a.timeoutMs);
    socket.on("connect", () => socket.write(a.data));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (reply.length >= a.data.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ ok: reply === a.data, reply });
      }
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, error: errorCode(error) });
    });
  });
}

function udp(a: Action): Promise<NetResult> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const done = (result: NetResult): void => {
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, error: "ETIMEDOUT" }), a.timeoutMs);
    // A connected UDP socket receives ICMP errors (port unreachable → ECONNREFUSED).
    socket.on("error", (error) => done({ ok: false, error: errorCode(error) }));
    socket.on("message", (message) =>
      done({ ok: message.toString("utf8") === a.data, reply: message.toString("utf8") }),
    );
    socket.bind({ port: 0, ...(a.source ? { address: a.source } : {}) }, () => {
      socket.connect(a.port, a.host, () => socket.send(a.data));
    });
  });
}

function http(a: Action): Promise<NetResult> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: a.host,
        port: a.port,
        path: a.data || "/",
        timeout: a.timeoutMs,
        ...(a.source ? { localAddress: a.source } : {}),
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
        });
        res.on("end", () => resolve({ ok: res.statusCode === 200, reply: body }));
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (error) => resolve({ ok: false, error: errorCode(error) }));
    req.end();
  });
}

const RUN = { tcp, udp, http } as const;

async function main(): Promise<void> {
  const spec = specSchema.parse(JSON.parse(process.argv[2] ?? "{}"));
  const results: NetResult[] = [];
  const timed = async (a: Action): Promise<NetResult> => {
    if (a.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, a.pauseMs));
    const startedAt = Date.now();
    return { ...(await RUN[a.kind](a)), startedAt, at: Date.now() };
  };
  if (spec.parallel) {
    // In parallel, pauseMs is each action's start offset: a paced sampler in one process.
    results.push(...(await Promise.all(spec.actions.map(timed))));
  } else {
    for (const a of spec.actions) results.push(await timed(a));
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`Cannot run the network actions: ${(error as Error).message}\n`);
  process.exit(2);
});
