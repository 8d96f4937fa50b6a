import { spawnSync } from "node:child_process";
import t from "tap";
import { LvmThinPool, lvName } from "../../../dom0/storage/lvm-pool.js";

/** A fake `lvm` that records commands and keeps a table of LVs: enough to test the driver's logic. */
function fakeLvm(initial: Record<string, number>) {
  const lvs = new Map(Object.entries(initial));
  const calls: string[] = [];
  const run = async (args: readonly string[]) => {
    calls.push(args.join(" "));
    const [cmd] = args;
    const last = args[args.length - 1]!;
    const short = (lv: string) => lv.slice(lv.indexOf("/") + 1);
    if (cmd === "lvs" && args.includes("lv_name")) return [...lvs.keys()].map((n) => `  ${n}`).join("\n");
    if (cmd === "lvs") return `  ${lvs.get(short(last))}`;
    if (cmd === "lvcreate") lvs.set(args[4]!, Number(args[6]!.slice(0, -1)));
    if (cmd === "lvremove") lvs.delete(short(last));
    if (cmd === "lvrename") {
      lvs.set(args[3]!, lvs.get(args[2]!)!);
      lvs.delete(args[2]!);
    }
    if (cmd === "lvextend" || cmd === "lvreduce")
      lvs.set(short(last), Number(args[args.length - 2]!.slice(0, -1)));
    return "";
  };
  return { lvs, calls, run };
}

t.test("volumes are named like Qubes' lvm_thin driver", async (t) => {
  t.equal(lvName({ vm: "work", volume: "private" }), "vm-work-private");
  t.equal(lvName({ vm: "work", volume: "root" }, "-import"), "vm-work-root-import");
});

t.test("create, resize, export and an import commit issue these lvm commands", async (t) => {
  const lvm = fakeLvm({ pool00: 0 });
  const pool = new LvmThinPool({ volumeGroup: "qubes_dom0", thinPool: "pool00", run: lvm.run });
  const ref = { vm: "work", volume: "private" } as const;
  await pool.create(ref, 2 ** 31);
  await pool.resize(ref, 3 * 2 ** 30);
  await pool.resize(ref, 2 ** 30);
  t.equal(await pool.export(ref), "/dev/qubes_dom0/vm-work-private");
  const imp = await pool.import(ref);
  t.equal(imp.path, "/dev/qubes_dom0/vm-work-private-import");
  await imp.commit();
  t.same(
    lvm.calls.filter((c) => !c.startsWith("lvs")),
    [
      "lvcreate -T qubes_dom0/pool00 -n vm-work-private -V 2147483648b",
      "lvextend -L 3221225472b qubes_dom0/vm-work-private",
      "lvreduce -f -L 1073741824b qubes_dom0/vm-work-private",
      "lvchange -ay qubes_dom0/vm-work-private",
      "lvcreate -T qubes_dom0/pool00 -n vm-work-private-import -V 1073741824b",
      "lvchange -ay qubes_dom0/vm-work-private-import",
      "lvrename qubes_dom0 vm-work-private vm-work-private-back",
      "lvrename qubes_dom0 vm-work-private-import vm-work-private",
      "lvremove -f qubes_dom0/vm-work-private-back",
    ],
  );
  t.same([...lvm.lvs.keys()].sort(), ["pool00", "vm-work-private"]);
});

t.test("remove drops the volume and a leftover import, and tolerates a missing volume", async (t) => {
  const lvm = fakeLvm({ "vm-a-private": 1, "vm-a-private-import": 1 });
  const pool = new LvmThinPool({ volumeGroup: "vg", thinPool: "tp", run: lvm.run });
  await pool.remove({ vm: "a", volume: "private" });
  t.same([...lvm.lvs.keys()], []);
  await pool.remove({ vm: "a", volume: "private" });
  await t.rejects(pool.size({ vm: "a", volume: "private" }), {
    message: 'Cannot find volume "vg/vm-a-private": it does not exist',
  });
});

const noDeviceMapper =
  spawnSync("dmsetup", ["version"]).status !== 0 ? "no device-mapper: `dmsetup version` fails" : false;

t.test(
  "a real thin pool on a loop device creates, resizes and imports volumes",
  { skip: noDeviceMapper },
  async (t) => {
    // Runs where device-mapper exists (the Vagrant VM): a throw-away VG on a loop device.
    const id = `${process.pid}${Math.random().toString(36).slice(2, 6)}`;
    const image = `/tmp/lvm-pool-${id}.img`;
    const vg = `qftest${id}`;
    const sh = (cmd: string) => spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
    sh(`truncate -s 256M ${image}`);
    const loop = sh(`losetup -f --show ${image}`).stdout.trim();
    t.teardown(() => {
      sh(`vgremove -f ${vg}; pvremove -f ${loop}; losetup -d ${loop}; rm -f ${image}`);
    });
    t.equal(sh(`vgcreate ${vg} ${loop} && lvcreate -T ${vg}/tp -L 128M`).status, 0);
    const pool = new LvmThinPool({ volumeGroup: vg, thinPool: "tp" });
    const ref = { vm: "work", volume: "private" } as const;
    await pool.create(ref, 8 << 20);
    await pool.resize(ref, 16 << 20);
    t.equal(await pool.size(ref), 16 << 20);
    const imp = await pool.import(ref);
    t.equal(sh(`printf hello > ${imp.path}`).status, 0);
    await imp.commit();
    t.equal(sh(`head -c 5 ${await pool.export(ref)}`).stdout, "hello");
    await pool.remove(ref);
    t.equal(await pool.exists(ref), false);
  },
);
