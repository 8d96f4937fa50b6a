/**
 * The emitter's test topology (issue 3): one ProxyVM and N clients with R
 * firewall rules each, stored in a temporary QUBES_DIR, and one real QubesDB
 * daemon per VM. Used by the emitter benchmark and the emitter integration
 * test. The ProxyVM's daemon is the `qubesdb-daemon` command itself; the
 * clients' daemons (the same daemon code) share one host process, so 300 VMs
 * do not need 300 Node processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { saveFirewall } from "../../dom0/firewall/index.js";
import { createVm, setProperty } from "../../dom0/model/edit.js";
import { withStore } from "../../dom0/store/store.js";
import { type FirewallRule, parseApiRule } from "../../shared/firewall/index.js";

export const PROXY = "sys-proxy";
export const TEMPLATE = "debian-12";
const UUID = "00000000-0000-4000-8000-000000000000";

/** The repository root: the nearest folder above this file that holds dist/ and package.json. */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, "package.json")) && existsSync(join(dir, "dist")))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("Cannot find the repository root (run npm run build first)");
    dir = up;
  }
  return dir;
}

export function clientName(index: number): string {
  return `client-${index}`;
}

/** 49 distinct accept rules and a final drop: 50 rules. */
export function clientRules(index: number, count: number): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (let i = 0; i < count - 1; i++) {
    rules.push(
      parseApiRule(
        `action=accept dst4=198.51.100.${i % 256}/32 proto=tcp dstports=${1000 + index}-${1000 + index + i}`,
      ),
    );
  }
  rules.push(parseApiRule("action=drop"));
  return rules;
}

/** Writes qubes.xml (template, ProxyVM, clients) and every client's firewall.xml. */
export async function buildTopologyStore(
  qubesDir: string,
  clients: number,
  rulesPerClient: number,
  now: number,
) {
  await withStore(qubesDir, (doc) => {
    createVm(doc, { name: TEMPLATE, vmClass: "TemplateVM", label: "black", uuid: UUID });
    createVm(doc, { name: PROXY, vmClass: "AppVM", label: "green", template: TEMPLATE, uuid: UUID });
    setProperty(doc, PROXY, "provides_network", "True");
    setProperty(doc, PROXY, "netvm", "");
    for (let i = 1; i <= clients; i++) {
      createVm(doc, {
        name: clientName(i),
        vmClass: "AppVM",
        label: "red",
        template: TEMPLATE,
        uuid: UUID,
        properties: [["netvm", PROXY]],
      });
    }
  });
  for (let i = 1; i <= clients; i++)
    await saveFirewall(qubesDir, clientName(i), clientRules(i, rulesPerClient), now);
}

export interface RunningDaemons {
  stop(): Promise<void>;
}

function waitForLine(child: ChildProcess, line: string, what: string): Promise<void> {
  return new Promise((resolveReady, reject) => {
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (text) => {
      if (text === line) resolveReady();
    });
    child.once("exit", (code) => reject(new Error(`Cannot start ${what}: exited with ${code}: ${stderr}`)));
  });
}

async function waitForSocket(path: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error(`Cannot start qubesdb-daemon for ${path}`);
    if (Date.now() > deadline) throw new Error(`Cannot start qubesdb-daemon: no ${path} after 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const HOST_SCRIPT = `
const [daemonUrl, logUrl, pathsJson] = process.argv.slice(1);
const { QubesDbDaemon } = await import(daemonUrl);
const { silentLogger } = await import(logUrl);
const daemons = [];
for (const socket of JSON.parse(pathsJson)) daemons.push(await QubesDbDaemon.start({ socket, logger: silentLogger }));
process.on("SIGTERM", async () => { await Promise.all(daemons.map((d) => d.close())); process.exit(0); });
process.stdout.write("ready\\n");
`;

/** Starts a daemon per VM name at `$runDir/qubesdb.NAME.sock`; the first name gets its own process. */
export async function startDaemons(runDir: string, names: readonly string[]): Promise<RunningDaemons> {
  mkdirSync(runDir, { recursive: true });
  const root = repositoryRoot();
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once("exit", () => done());
            child.kill("SIGTERM");
          }),
      ),
    );
  };
  try {
    const [first, ...rest] = names;
    if (first !== undefined) {
      const socket = join(runDir, `qubesdb.${first}.sock`);
      const child = spawn(
        process.execPath,
        [join(root, "dist/shared/qubesdb/cli/qubesdb-daemon.js"), "--socket", socket],
        {
          stdio: ["ignore", "ignore", "pipe"],
          env: { ...process.env, NOTIFY_SOCKET: "", QUBES_FAKEIP_LOG: "warn" },
        },
      );
      children.push(child);
      await waitForSocket(socket, child);
    }
    if (rest.length > 0) {
      const paths = rest.map((name) => join(runDir, `qubesdb.${name}.sock`));
      const child = spawn(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          HOST_SCRIPT,
          pathToFileURL(resolve(root, "dist/shared/qubesdb/daemon.js")).href,
          pathToFileURL(resolve(root, "dist/shared/log.js")).href,
          JSON.stringify(paths),
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      children.push(child);
      await waitForLine(child, "ready", "the client daemons");
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
