/**
 * What backup reads from and restore writes to, kept narrow so the backup
 * logic does not depend on how the store edits qubes.xml. The store adapter
 * (store-adapter.ts) implements both against `dom0/store`.
 */
export interface VmSource {
  /** The whole collection as qubes.xml text. */
  readQubesXml(): Promise<string>;
  /** The VM's firewall.xml, or undefined when it has none. */
  readFirewallXml(vm: string): Promise<Buffer | undefined>;
}

export interface RestoreTarget {
  vmNames(): Promise<ReadonlySet<string>>;
  /**
   * Adds the `<domain>` element `domainXml` (from a backup's qubes.xml) as a
   * new VM named `name`, with a fresh qid; references among restored VMs are
   * already rewritten by the caller.
   */
  addVm(domainXml: string, name: string): Promise<void>;
  /** Removes a VM this restore added (its qubes.xml entry and its directory's firewall.xml). */
  removeVm(name: string): Promise<void>;
  writeFirewallXml(vm: string, data: Buffer): Promise<void>;
}
