/**
 * VmSource and RestoreTarget on the dom0 store: qubes.xml under the store
 * lock, firewall rules in `QUBES_DIR/appvms/VM/firewall.xml`.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { DOMParser, type Element } from "@xmldom/xmldom";
import { SystemError } from "../../shared/errors.js";
import { domainElements, readCollection } from "../model/collection.js";
import { findDomain } from "../model/edit.js";
import { APPVMS_DIR } from "../storage/file-pool.js";
import {
  appendIndented,
  ensureChild,
  firstChild,
  removeIndented,
  writeNamedValue,
} from "../store/qubes-xml.js";
import { qubesXmlPath, readStore, withStore, writeFileAtomic } from "../store/store.js";
import type { RestoreTarget, VmSource } from "./vm-source.js";

/** Qubes' firewall rules file inside a VM's directory. */
const FIREWALL_XML = "firewall.xml";

export class StoreAdapter implements VmSource, RestoreTarget {
  readonly #dir: string;

  constructor(qubesDir: string) {
    this.#dir = qubesDir;
  }

  #firewallPath(vm: string): string {
    return join(this.#dir, APPVMS_DIR, vm, FIREWALL_XML);
  }

  async readQubesXml(): Promise<string> {
    return readFile(qubesXmlPath(this.#dir), "utf8").catch((error) => {
      throw new SystemError(`Cannot read "${qubesXmlPath(this.#dir)}"`, { cause: error });
    });
  }

  async readFirewallXml(vm: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.#firewallPath(vm));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new SystemError(`Cannot read "${this.#firewallPath(vm)}"`, { cause: error });
    }
  }

  async vmNames(): Promise<ReadonlySet<string>> {
    return new Set(readCollection(await readStore(this.#dir)).vms.keys());
  }

  async addVm(domainXml: string, name: string): Promise<void> {
    await withStore(this.#dir, (doc) => {
      const parsed = new DOMParser().parseFromString(domainXml, "text/xml").documentElement!;
      const domain = doc.importNode(parsed, true) as Element;
      const used = new Set([...readCollection(doc).vms.values()].map((vm) => vm.qid));
      let qid = 1;
      while (used.has(qid)) qid++;
      domain.setAttribute("id", `domain-${qid}`);
      const props = ensureChild(domain, "properties");
      writeNamedValue(props, "property", "qid", String(qid));
      writeNamedValue(props, "property", "name", name);
      // A restored VM is a new VM: it must not share its UUID with the original.
      writeNamedValue(props, "property", "uuid", randomUUID());
      const domains = firstChild(doc.documentElement!, "domains")!;
      appendIndented(domains, domain);
      readCollection(doc); // validates: unique names and qids
    });
  }

  async removeVm(name: string): Promise<void> {
    await withStore(this.#dir, (doc) => {
      const found = domainElements(doc).some((el) => {
        try {
          return findDomain(doc, name) === el;
        } catch {
          return false;
        }
      });
      if (found) removeIndented(findDomain(doc, name));
    });
    await unlink(this.#firewallPath(name)).catch(() => {});
  }

  async writeFirewallXml(vm: string, data: Buffer): Promise<void> {
    const dir = join(this.#dir, APPVMS_DIR, vm);
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(this.#firewallPath(vm), data.toString("utf8"), dir);
  }
}
