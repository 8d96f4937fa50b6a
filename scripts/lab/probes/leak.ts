/**
 * Probe 2: client → test server works, the server and the ProxyVM see the
 * native IP, and no byte the client receives carries it — ICMP errors from
 * the ProxyVM and from sys-net included (TTL exceeded, port and host
 * unreachable quote the offending packet's header, which left as native).
 */
import { startCapture } from "../capture.js";
import { describeResult, netIn } from "../net.js";
import { framesContaining, icmpName, summarizeFrame } from "../pcap.js";
import type { LabState } from "../state.js";
import { CLOSED_UDP_PORT, ECHO_PORT, FAR_IP, HTTP_PORT, SERVER_IP, UNREACHABLE_IP } from "../topology.js";
import {
  fakeClients,
  nativeIp,
  type ProbeResult,
  ping,
  probe,
  proxyNs,
  serverSaw,
  token,
} from "./context.js";

/** ICMP errors the client must receive (rewritten, not dropped): applications rely on them to fail fast */
const REQUIRED_ERRORS = ["time-exceeded", "port-unreachable"];

export function probeLeak(state: LabState): Promise<ProbeResult> {
  return probe(
    "client → server works; upstream sees the native IP; no received byte carries it",
    async () => {
      const client = fakeClients(state)[0];
      if (client === undefined) return { ok: false, observed: "no fake-IP client in this lab (--clients 0)" };
      const native = nativeIp(state, client.name);
      // Upstream's view, outside the capture: the HTTP reply quotes the address it saw.
      const http = token("leak-http");
      const [whoami] = await netIn(client.ns, [
        { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: `/${http}` },
      ]);
      const clientCapture = await startCapture(client.ns, "eth0", "in");
      // The ProxyVM's side of the client: optional, so a missing vif does not hide the client's view.
      const proxyCapture = await startCapture(proxyNs(state), client.vif, "in").catch(
        (error: Error) => error,
      );
      const tcp = token("leak-tcp");
      const udp = token("leak-udp");
      let frames: Buffer[];
      let proxyFrames: Buffer[];
      let echo: Awaited<ReturnType<typeof netIn>>;
      try {
        [echo] = await Promise.all([
          netIn(
            client.ns,
            [
              { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: tcp },
              { kind: "udp", host: SERVER_IP, port: ECHO_PORT, data: udp },
              { kind: "udp", host: SERVER_IP, port: CLOSED_UDP_PORT, data: token("leak-closed") },
            ],
            true,
          ),
          ping(client.ns, SERVER_IP),
          ping(client.ns, SERVER_IP, 1),
          ping(client.ns, FAR_IP, 2),
          ping(client.ns, UNREACHABLE_IP),
        ]);
      } finally {
        frames = await clientCapture.stop();
        proxyFrames = proxyCapture instanceof Error ? [] : await proxyCapture.stop();
      }
      const leaks = framesContaining(frames, native);
      const icmp = [
        ...new Set(
          frames.flatMap((f) => {
            const s = summarizeFrame(f);
            return s?.icmp ? [icmpName(s.icmp.type, s.icmp.code)] : [];
          }),
        ),
      ];
      const proxySources = [
        ...new Set(
          proxyFrames.flatMap((f) => {
            const s = summarizeFrame(f);
            return s ? [s.src] : [];
          }),
        ),
      ];
      const upstream = [
        ...new Set([...serverSaw(state, tcp), ...serverSaw(state, udp), ...serverSaw(state, http)]),
      ];
      const missingErrors = REQUIRED_ERRORS.filter((e) => !icmp.includes(e));
      const echoOk = echo[0]?.ok === true && echo[1]?.ok === true;
      const ok =
        whoami?.ok === true &&
        echoOk &&
        leaks.length === 0 &&
        missingErrors.length === 0 &&
        upstream.length === 1 &&
        upstream[0] === native &&
        proxySources.length === 1 &&
        proxySources[0] === native;
      const observed = [
        `${client.name}: http ${describeResult(whoami)}, tcp echo ${describeResult(echo[0])}, udp echo ${describeResult(echo[1])}`,
        `upstream saw ${upstream.join(",") || "nothing"}; ${
          proxyCapture instanceof Error
            ? `no ProxyVM capture (${proxyCapture.message})`
            : `ProxyVM saw source ${proxySources.join(",") || "nothing"}`
        } (native ${native})`,
        `client received ${frames.length} frames, ICMP ${icmp.join(",") || "none"}${missingErrors.length ? ` (missing ${missingErrors.join(",")})` : ""}`,
        leaks.length === 0
          ? "native IP in none of them"
          : `native IP in ${leaks.length} of them (frames ${leaks.slice(0, 5).join(",")})`,
      ].join("; ");
      return { ok, observed };
    },
  );
}
