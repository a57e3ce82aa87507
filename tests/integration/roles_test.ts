import { deepStrictEqual } from "node:assert/strict";
import { bangerArgv, runCommand } from "./_banger.ts";

async function probe(args: string[]): Promise<Record<string, string>> {
  const root = await Deno.makeTempDir();
  const out = await runCommand(bangerArgv(args), { BANGER_ROOT: root });
  await Deno.remove(root, { recursive: true });
  if (out.code !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout);
}

Deno.test("the CLI role cannot run ip or QEMU, load libc or open network sockets", async () => {
  const report = await probe(["internal", "probe-permissions"]);
  deepStrictEqual(report["run:ip"], "NotCapable");
  // Nor anything that would start them for it.
  deepStrictEqual(report["run:setsid"], "NotCapable");
  deepStrictEqual(report["run:sh"], "NotCapable");
  deepStrictEqual(report["run:self"], "NotCapable");
  deepStrictEqual(report["run:qemu-system-x86_64"], "NotCapable");
  deepStrictEqual(report["run:nft"], "NotCapable");
  deepStrictEqual(report.ffi, "NotCapable");
  deepStrictEqual(report.net, "NotCapable");
  // It still runs what it needs.
  deepStrictEqual(report["run:ssh"], "allowed");
});

Deno.test("the daemon role launches QEMU but cannot use FFI or run ip", async () => {
  const report = await probe(["daemon", "--probe-permissions"]);
  deepStrictEqual(report.ffi, "NotCapable");
  deepStrictEqual(report["run:ip"], "NotCapable");
  deepStrictEqual(report["run:nft"], "NotCapable");
  deepStrictEqual(report["run:sh"], "NotCapable");
  deepStrictEqual(report["run:qemu-system-x86_64"], "allowed");
});

Deno.test("the helper role uses FFI and ip but cannot run QEMU or ssh", async () => {
  const report = await probe(["helper", "--probe-permissions"]);
  deepStrictEqual(report.ffi, "allowed");
  deepStrictEqual(report["run:ip"], "allowed");
  deepStrictEqual(report["run:qemu-system-x86_64"], "NotCapable");
  deepStrictEqual(report["run:ssh"], "NotCapable");
  deepStrictEqual(report["run:sh"], "NotCapable");
  deepStrictEqual(report.net, "NotCapable");
});
