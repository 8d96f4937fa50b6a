import t from "tap";
import { listDomains, planRestore, selectVms, subsetQubesXml } from "../../../dom0/backup/backup-plan.js";

const XML = `<?xml version="1.0" encoding="UTF-8"?>
<qubes>
  <labels><label color="0xcc0000" id="label-1">red</label></labels>
  <domains>
    <domain id="domain-0" class="AdminVM"><properties/></domain>
    <domain id="domain-1" class="TemplateVM"><properties><property name="name">tpl</property></properties></domain>
    <domain id="domain-2" class="AppVM"><properties><property name="name">work</property><property name="template">tpl</property></properties></domain>
    <domain id="domain-3" class="AppVM"><properties><property name="name">net</property><property name="template">tpl</property></properties></domain>
  </domains>
</qubes>
`;
const domains = listDomains(XML, "qubes.xml");

t.test("domains are listed with name, class and template", async (t) => {
  t.same(
    domains.map((d) => [d.name, d.vmClass, d.template]),
    [
      ["dom0", "AdminVM", undefined],
      ["tpl", "TemplateVM", undefined],
      ["work", "AppVM", "tpl"],
      ["net", "AppVM", "tpl"],
    ],
  );
});

t.test("selection: named VMs, or all but dom0, minus exclusions", async (t) => {
  const table: Array<[string[], string[], string[]]> = [
    [[], [], ["tpl", "work", "net"]],
    [["work"], [], ["work"]],
    [[], ["net"], ["tpl", "work"]],
    [["net", "work"], ["net"], ["work"]],
  ];
  for (const [names, exclude, expected] of table) {
    t.same(
      selectVms(domains, names, exclude).map((d) => d.name),
      expected,
      `${names.join(",")} -${exclude.join(",")}`,
    );
  }
  t.throws(() => selectVms(domains, ["ghost"], []), { message: 'Cannot back up "ghost": no such qube' });
});

t.test("the backup's qubes.xml keeps labels and only the chosen domains", async (t) => {
  const subset = subsetQubesXml(XML, "qubes.xml", new Set(["work"]));
  t.same(
    listDomains(subset, "subset").map((d) => d.name),
    ["work"],
  );
  t.match(subset, /<label color="0xcc0000" id="label-1">red<\/label>/);
});

t.test("restore names: conflicts refused or renamed, references follow renames", async (t) => {
  const backup = domains.slice(1);
  t.same(
    planRestore(backup, [], new Set(["dom0"]), false).map((p) => [p.backupName, p.name]),
    [
      ["tpl", "tpl"],
      ["work", "work"],
      ["net", "net"],
    ],
  );
  t.throws(() => planRestore(backup, [], new Set(["work"]), false), {
    message: 'Cannot restore "work": a qube with this name exists (use --rename-conflicting)',
  });
  const renamed = planRestore(backup, [], new Set(["tpl", "tpl1", "work"]), true);
  t.same(
    renamed.map((p) => [p.backupName, p.name]),
    [
      ["tpl", "tpl2"],
      ["work", "work1"],
      ["net", "net"],
    ],
  );
  const work = renamed.find((p) => p.backupName === "work")!;
  t.match(work.xml, /<property name="name">work1<\/property><property name="template">tpl2<\/property>/);
  t.throws(() => planRestore(backup, ["work"], new Set(), false), {
    message:
      'Cannot restore "work": its template "tpl" is neither in this restore nor on this system (restore it too)',
  });
  t.same(
    planRestore(backup, ["work"], new Set(["tpl"]), false).map((p) => p.name),
    ["work"],
  );
  t.throws(() => planRestore(backup, ["ghost"], new Set(), false), {
    message: 'Cannot restore "ghost": the backup does not contain it',
  });
});
