import { deepStrictEqual, ok } from "node:assert/strict";
import { resolvePaths } from "./paths.ts";
import { outputPaths, roleOf, rolePermissions } from "./roles.ts";

const paths = resolvePaths({ root: "/srv/b", home: "/home/u" });

Deno.test("roleOf() picks the role from the first argument only", () => {
  deepStrictEqual(roleOf(["daemon"]), "daemon");
  deepStrictEqual(roleOf(["daemon", "stop"]), "cli");
  deepStrictEqual(roleOf(["helper"]), "helper");
  deepStrictEqual(roleOf(["vm", "run", "--", "daemon"]), "cli");
});

Deno.test("roleOf() leaves help to the CLI, so daemon --help starts no daemon", () => {
  deepStrictEqual(roleOf(["daemon", "--help"]), "cli");
  deepStrictEqual(roleOf(["daemon", "-h"]), "cli");
  deepStrictEqual(roleOf(["helper", "--help"]), "cli");
});

Deno.test("outputPaths() takes output files before -- only", () => {
  deepStrictEqual(
    outputPaths([
      "vm",
      "run",
      "--timings",
      "t.json",
      "--output=o.patch",
      "--",
      "--timings",
      "x",
    ]),
    ["t.json", "o.patch"],
  );
});

Deno.test("the CLI may write its own directories and named outputs, nothing else", () => {
  const cli = rolePermissions("cli", paths, undefined, [
    "/tmp/t.json",
  ]);
  ok(Array.isArray(cli.write));
  ok(cli.write.includes("/tmp/t.json"));
  ok(cli.write.includes("/home/u/.local/state/banger"));
  ok(!cli.write.includes("/srv/b/var/lib/banger"));
  deepStrictEqual(cli.ffi, false);
});

Deno.test("the daemon may reach one control socket per address slot, capped", () => {
  const daemon = rolePermissions("daemon", paths, {
    qemuBin: "qemu-system-x86_64",
    hostSlots: 6,
  });
  ok(Array.isArray(daemon.net));
  ok(daemon.net.includes("unix:/srv/b/run/banger/vmm/6.sock"));
  ok(!daemon.net.includes("unix:/srv/b/run/banger/vmm/7.sock"));
  const big = rolePermissions("daemon", paths, {
    qemuBin: "q",
    hostSlots: 65534,
  });
  ok(Array.isArray(big.net) && big.net.length < 1100);
});
