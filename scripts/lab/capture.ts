/** Packet capture with tcpdump inside a namespace. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SystemError } from "../../shared/errors.js";
import { parsePcap } from "./pcap.js";
import { netnsPath } from "./system.js";

export interface Capture {
  /** stops tcpdump and returns the captured frames */
  stop(): Promise<Buffer[]>;
}

/** Starts `tcpdump -i IFACE -Q DIRECTION` in `ns`; resolves once tcpdump is listening. */
export async function startCapture(
  ns: string,
  iface: string,
  direction: "in" | "out" | "inout" = "in",
): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), "qfl-cap-"));
  const file = join(dir, "cap.pcap");
  // --immediate-mode: hand each packet over at once (otherwise TPACKET_V3 holds
  // them until a ring block retires, and a short capture loses them all);
  // -U: write each packet at once; -s 0: whole frames (ICMP errors quote headers deep inside)
  const child: ChildProcess = spawn(
    "nsenter",
    [
      `--net=${netnsPath(ns)}`,
      "tcpdump",
      "--immediate-mode",
      "-i",
      iface,
      "-Q",
      direction,
      "-U",
      "-s",
      "0",
      "-n",
      "-w",
      file,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new SystemError(`Cannot capture on ${iface} in ${ns}: tcpdump did not start: ${stderr}`)),
        5000,
      );
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        reject(new SystemError(`Cannot capture on ${iface} in ${ns}: ${stderr.trim()}`));
      });
    });
  } catch (error) {
    // Leave nothing behind: neither a tcpdump still starting nor its directory.
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    async stop(): Promise<Buffer[]> {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
      try {
        return parsePcap(readFileSync(file));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
