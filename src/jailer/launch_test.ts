import assert from "node:assert/strict";
import { jailerArgs } from "./launch.ts";

Deno.test("jailerArgs() passes id, exec file, owner, chroot base and the socket", () => {
  const args = jailerArgs({
    id: "0123456789ab",
    execFile: "/usr/local/bin/firecracker",
    uid: 1000,
    gid: 1001,
    chrootBase: "/var/lib/banger-root/jail",
    enablePci: false,
  });
  assert.deepEqual(args, [
    "--id",
    "0123456789ab",
    "--exec-file",
    "/usr/local/bin/firecracker",
    "--uid",
    "1000",
    "--gid",
    "1001",
    "--chroot-base-dir",
    "/var/lib/banger-root/jail",
    "--daemonize",
    "--",
    "--api-sock",
    "/run/firecracker.socket",
  ]);
});

Deno.test("jailerArgs() forwards --enable-pci to Firecracker, after --", () => {
  const args = jailerArgs({
    id: "0123456789ab",
    execFile: "/fc",
    uid: 0,
    gid: 0,
    chrootBase: "/j",
    enablePci: true,
  });
  assert.ok(args.indexOf("--enable-pci") > args.indexOf("--"));
});
