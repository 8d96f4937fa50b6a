/**
 * A read-only, typed snapshot of the VM collection, taken from the qubes.xml
 * DOM. Planners and network functions work on this snapshot (plain data, no
 * I/O); changes are made on the DOM (see edit.ts) and a new snapshot taken.
 */
import type { Document, Element } from "@xmldom/xmldom";
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { childElements, firstChild, readNamedValues } from "../store/qubes-xml.js";

export const VM_CLASSES = ["AppVM", "TemplateVM", "StandaloneVM", "DispVM", "AdminVM"] as const;
export type VmClass = (typeof VM_CLASSES)[number];

/** Qubes' AdminVM has no `name`/`qid` properties in qubes.xml: they are fixed (qubes/vm/adminvm.py). */
export const ADMIN_VM_NAME = "dom0";

export interface VmRecord {
  readonly name: string;
  readonly qid: number;
  /** the `class` attribute; other classes than VM_CLASSES are kept and treated like AppVM */
  readonly vmClass: string;
  /** explicitly set properties (raw text as stored); a missing entry means "default" */
  readonly properties: ReadonlyMap<string, string>;
  readonly features: ReadonlyMap<string, string>;
}

export interface Collection {
  /** global properties (`default_netvm`, `default_template`, ...) */
  readonly globals: ReadonlyMap<string, string>;
  /** label id (`label-1`) → label name (`red`), in document order */
  readonly labels: ReadonlyMap<string, string>;
  /** VMs by name, in document order */
  readonly vms: ReadonlyMap<string, VmRecord>;
}

/** The `<domain>` elements of the document. */
export function domainElements(doc: Document): Element[] {
  const root = doc.documentElement;
  const domains = root === null ? undefined : firstChild(root, "domains");
  return domains === undefined ? [] : childElements(domains, "domain");
}

function readVm(el: Element): VmRecord {
  const vmClass = el.getAttribute("class") ?? "";
  const properties = readNamedValues(firstChild(el, "properties"), "property");
  const features = readNamedValues(firstChild(el, "features"), "feature");
  const isAdmin = vmClass === "AdminVM";
  const name = properties.get("name") ?? (isAdmin ? ADMIN_VM_NAME : undefined);
  const id = el.getAttribute("id") ?? "(no id)";
  if (name === undefined || name === "") {
    throw new InvalidInputError(`Cannot load domain "${id}": it has no name property`);
  }
  const qidText = properties.get("qid") ?? (isAdmin ? "0" : undefined);
  if (qidText === undefined || !/^(0|[1-9][0-9]{0,5})$/.test(qidText)) {
    throw new InvalidInputError(`Cannot load domain "${name}": qid "${qidText ?? ""}" is not a number`);
  }
  return { name, qid: Number(qidText), vmClass, properties, features };
}

/**
 * Takes a snapshot of the collection; a name used twice is an error. A qid
 * used twice is not: Qubes' own R4 test data has one (fedora-25-dvm and
 * fedora-25-clone-dvm, both 10), and a loader must read it. New VMs always
 * get an unused qid.
 */
export function readCollection(doc: Document): Collection {
  const root = doc.documentElement;
  if (root === null) throw new InvalidInputError("Cannot load qubes.xml: it is empty");
  const globals = readNamedValues(firstChild(root, "properties"), "property");
  const labels = new Map<string, string>();
  const labelsEl = firstChild(root, "labels");
  for (const el of labelsEl === undefined ? [] : childElements(labelsEl, "label")) {
    const id = el.getAttribute("id");
    if (id !== null) labels.set(id, (el.textContent ?? "").trim());
  }
  const vms = new Map<string, VmRecord>();
  for (const el of domainElements(doc)) {
    const vm = readVm(el);
    if (vms.has(vm.name))
      throw new InvalidInputError(`Cannot load domain "${vm.name}": the name is used twice`);
    vms.set(vm.name, vm);
  }
  return { globals, labels, vms };
}

/** The VM or a `NotFound`-style error naming it. */
export function getVm(collection: Collection, name: string): VmRecord {
  const vm = collection.vms.get(name);
  if (vm === undefined) throw new NotFoundError(`Cannot find qube "${name}": no such qube`);
  return vm;
}

/** Qubes' boolean literals (qubes/property.py `bool`). */
export function parseBool(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if (["1", "yes", "true", "on"].includes(lower)) return true;
  if (["0", "no", "false", "off", ""].includes(lower)) return false;
  return undefined;
}

export function boolProperty(vm: VmRecord, name: string): boolean {
  return parseBool(vm.properties.get(name) ?? "") ?? false;
}
