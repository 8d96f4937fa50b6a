/**
 * Pure planning for backup and restore on qubes.xml text: which domains go
 * into a backup (and the reduced qubes.xml that describes them), and which
 * names restored VMs get. No I/O.
 */
import { type Element, XMLSerializer } from "@xmldom/xmldom";
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { childElements, firstChild, parseQubesXml } from "../store/qubes-xml.js";

export interface BackupDomain {
  readonly name: string;
  readonly vmClass: string;
  /** The `template` property, when set. */
  readonly template?: string | undefined;
  /** The `<domain>` element, serialized. */
  readonly xml: string;
}

/** The document and its `<domains>`; the store's parser does the XML checks. */
function parse(text: string, source: string) {
  const doc = parseQubesXml(text, source);
  const root = doc.documentElement;
  const domains = root === null ? undefined : firstChild(root, "domains");
  if (domains === undefined) {
    throw new InvalidInputError(`Cannot parse "${source}": not a qubes.xml (no <qubes><domains>)`);
  }
  return { doc, domains };
}

const children = (parent: Element, tag: string): Element[] => childElements(parent, tag);

function property(domain: Element, name: string): Element | undefined {
  const props = children(domain, "properties")[0];
  return props === undefined
    ? undefined
    : children(props, "property").find((p) => p.getAttribute("name") === name);
}

function domainName(domain: Element): string {
  if (domain.getAttribute("class") === "AdminVM") return "dom0";
  return property(domain, "name")?.textContent ?? "";
}

/** The domains of a qubes.xml, in document order. */
export function listDomains(text: string, source: string): BackupDomain[] {
  const { domains } = parse(text, source);
  return children(domains, "domain").map((el) => ({
    name: domainName(el),
    vmClass: el.getAttribute("class") ?? "",
    template: property(el, "template")?.textContent ?? undefined,
    xml: new XMLSerializer().serializeToString(el),
  }));
}

/**
 * Chooses the VMs to back up: the named ones (all but dom0 when none are
 * named) minus `exclude`. Unknown names and dom0 are errors.
 */
export function selectVms(
  all: readonly BackupDomain[],
  names: readonly string[],
  exclude: readonly string[],
): BackupDomain[] {
  const byName = new Map(all.map((d) => [d.name, d]));
  for (const name of [...names, ...exclude]) {
    if (!byName.has(name)) throw new NotFoundError(`Cannot back up "${name}": no such qube`);
  }
  const wanted =
    names.length > 0
      ? new Set(names)
      : new Set(all.filter((d) => d.vmClass !== "AdminVM").map((d) => d.name));
  for (const name of exclude) wanted.delete(name);
  const chosen = all.filter((d) => wanted.has(d.name));
  const admin = chosen.find((d) => d.vmClass === "AdminVM");
  if (admin !== undefined)
    throw new InvalidInputError(`Cannot back up "${admin.name}": the AdminVM has no volumes here`);
  if (chosen.length === 0) throw new InvalidInputError("Cannot back up nothing: every qube was excluded");
  return chosen;
}

/** qubes.xml reduced to the chosen domains; labels, pools and global properties are kept. */
export function subsetQubesXml(text: string, source: string, keep: ReadonlySet<string>): string {
  const { doc, domains } = parse(text, source);
  for (const el of children(domains, "domain")) {
    if (!keep.has(domainName(el))) {
      const prev = el.previousSibling;
      if (prev !== null && prev.nodeType === 3 && /^\s*$/.test(prev.nodeValue ?? ""))
        domains.removeChild(prev);
      domains.removeChild(el);
    }
  }
  return `${new XMLSerializer().serializeToString(doc).replace(/\n*$/, "")}\n`;
}

/** Properties whose value is another VM's name, rewritten when that VM is restored under a new name. */
const VM_REFERENCES = ["template", "netvm", "default_dispvm", "management_dispvm", "audiovm", "guivm"];

export interface RestorePlanEntry {
  readonly backupName: string;
  readonly name: string;
  readonly vmClass: string;
  readonly xml: string;
}

/**
 * Names for the restored VMs. A name that exists is refused, or with
 * `renameConflicting` becomes NAME1, NAME2, ... (Qubes' restore does the
 * same); references among the restored VMs follow the renames. A VM whose
 * template is neither restored with it nor present is refused: it could
 * never start. `existing` undefined (verify-only) skips both checks.
 */
export function planRestore(
  backup: readonly BackupDomain[],
  requested: readonly string[],
  existing: ReadonlySet<string> | undefined,
  renameConflicting: boolean,
): RestorePlanEntry[] {
  const restorable = backup.filter((d) => d.vmClass !== "AdminVM");
  const byName = new Map(restorable.map((d) => [d.name, d]));
  for (const name of requested) {
    if (!byName.has(name))
      throw new NotFoundError(`Cannot restore "${name}": the backup does not contain it`);
  }
  const chosen = requested.length > 0 ? restorable.filter((d) => requested.includes(d.name)) : restorable;
  const taken = new Set(existing ?? []);
  const renames = new Map<string, string>();
  for (const d of chosen) {
    let name = d.name;
    if (taken.has(name)) {
      if (!renameConflicting) {
        throw new InvalidInputError(
          `Cannot restore "${name}": a qube with this name exists (use --rename-conflicting)`,
        );
      }
      let n = 1;
      while (taken.has(`${d.name}${n}`)) n++;
      name = `${d.name}${n}`;
      if (name.length > 31)
        throw new InvalidInputError(`Cannot restore "${d.name}" as "${name}": the name is too long`);
    }
    taken.add(name);
    renames.set(d.name, name);
  }
  for (const d of chosen) {
    if (
      existing === undefined ||
      d.template === undefined ||
      renames.has(d.template) ||
      existing.has(d.template)
    ) {
      continue;
    }
    throw new InvalidInputError(
      `Cannot restore "${d.name}": its template "${d.template}" is neither in this restore nor on this system (restore it too)`,
    );
  }
  return chosen.map((d) => ({
    backupName: d.name,
    name: renames.get(d.name)!,
    vmClass: d.vmClass,
    xml: rewriteReferences(d.xml, renames),
  }));
}

function rewriteReferences(xml: string, renames: ReadonlyMap<string, string>): string {
  const { doc } = parse(`<qubes><domains>${xml}</domains></qubes>`, "domain");
  const domain = doc.getElementsByTagName("domain")[0]!;
  for (const key of ["name", ...VM_REFERENCES]) {
    const el = property(domain, key);
    const renamed = el === undefined ? undefined : renames.get(el.textContent ?? "");
    if (el !== undefined && renamed !== undefined) el.textContent = renamed;
  }
  return new XMLSerializer().serializeToString(domain);
}
