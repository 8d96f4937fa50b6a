/** What `up` needs from the host, checked before anything is created. */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { SystemError } from "../../shared/errors.js";

/** host tools the lab itself runs (the agent and probes need more; they report their own) */
export const REQUIRED_TOOLS = ["ip", "nft", "nsenter", "tcpdump", "ping", "sysctl"] as const;

export function onPath(tool: string, path = process.env["PATH"] ?? ""): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws one line saying what is missing: not root, or a tool. */
export function checkHost(): void {
  if (process.getuid?.() !== 0) {
    throw new SystemError(
      "Cannot build the lab: it needs root (network namespaces); run it with sudo, or use vagrant/",
    );
  }
  const absent = REQUIRED_TOOLS.filter((t) => !onPath(t));
  if (absent.length > 0) {
    throw new SystemError(
      `Cannot build the lab: ${absent.join(", ")} not found on PATH; run scripts/setup as root`,
    );
  }
}
