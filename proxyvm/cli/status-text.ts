/** The human form of `qubes-fakeip-agent status`: one line per vif, then each component's status. */

interface StatusLike {
  running?: boolean;
  vifs?: Record<string, Record<string, unknown>>;
  components?: Record<string, unknown>;
}

const COLUMNS = ["vif", "native", "visible", "namespace", "state", "lastError"] as const;

export function formatStatus(status: StatusLike): string {
  const rows = Object.values(status.vifs ?? {}).map((vif) =>
    COLUMNS.map((column) => {
      const value = vif[column];
      if (column === "native" && vif["native6"] !== undefined)
        return `${String(value)} ${String(vif["native6"])}`;
      if (column === "visible" && vif["visible6"] !== undefined)
        return `${String(value)} ${String(vif["visible6"])}`;
      return value === undefined ? "-" : String(value);
    }),
  );
  const header = ["VIF", "NATIVE", "VISIBLE", "NAMESPACE", "STATE", "LAST ERROR"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
  const out = [
    `agent: ${status.running === false ? "not running (recorded vifs only)" : "running"}`,
    line(header),
    ...rows.map(line),
  ];
  for (const [name, value] of Object.entries(status.components ?? {}))
    out.push(`component ${name}: ${JSON.stringify(value)}`);
  return `${out.join("\n")}\n`;
}
