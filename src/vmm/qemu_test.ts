import { deepStrictEqual, ok } from "node:assert/strict";
import { qemuArgs } from "./qemu.ts";
import type { LaunchSpec } from "./types.ts";

const SPEC: LaunchSpec = {
  id: "abc123",
  name: "calm-otter",
  vcpu: 2,
  memoryMib: 1024,
  kernel: "/img/vmlinux",
  initrd: "/img/initrd.img",
  cmdline: ["console=ttyS0", "root=LABEL=banger-root"],
  drives: [
    { id: "root", path: "/vm/root.qcow2", format: "qcow2", readOnly: false },
    { id: "seed", path: "/vm/a,b.ext4", format: "raw", readOnly: true },
  ],
  net: { tap: "bgtap2", mac: "52:54:00:1e:00:02" },
  dir: "/vm",
  controlSocket: "/run/banger/vmm/2.sock",
  consoleLog: "/vm/console.log",
};

function after(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

Deno.test("qemuArgs() adds tsc_early_khz under TCG only", () => {
  const tcg = qemuArgs(SPEC, { accel: "tcg", tscKhz: 2596000 });
  deepStrictEqual(after(tcg, "-append"), [
    "console=ttyS0 root=LABEL=banger-root tsc_early_khz=2596000",
  ]);
  deepStrictEqual(after(tcg, "-accel"), ["tcg,thread=multi"]);
  const kvm = qemuArgs(SPEC, { accel: "kvm", tscKhz: 2596000 });
  deepStrictEqual(after(kvm, "-append"), [
    "console=ttyS0 root=LABEL=banger-root",
  ]);
  deepStrictEqual(after(kvm, "-accel"), ["kvm"]);
});

Deno.test("qemuArgs() describes a microvm with ACPI, drives in order and the tap", () => {
  const args = qemuArgs(SPEC, { accel: "tcg", tscKhz: undefined });
  deepStrictEqual(after(args, "-M"), ["microvm,acpi=on"]);
  deepStrictEqual(after(args, "-smp"), ["2"]);
  deepStrictEqual(after(args, "-m"), ["1024M"]);
  deepStrictEqual(after(args, "-drive"), [
    "id=root,file=/vm/root.qcow2,format=qcow2,if=none",
    // Commas in paths are doubled, QEMU's escape.
    "id=seed,file=/vm/a,,b.ext4,format=raw,if=none,readonly=on",
  ]);
  deepStrictEqual(after(args, "-netdev"), [
    "tap,id=net0,ifname=bgtap2,script=no,downscript=no",
  ]);
  ok(
    after(args, "-device").includes(
      "virtio-net-device,netdev=net0,mac=52:54:00:1e:00:02",
    ),
  );
  deepStrictEqual(after(args, "-qmp"), [
    "unix:/run/banger/vmm/2.sock,server=on,wait=off",
  ]);
  deepStrictEqual(after(args, "-serial"), ["file:/vm/console.log"]);
  ok(args.includes("-daemonize"));
  ok(!after(args, "-append")[0]!.includes("tsc_early_khz"));
});
