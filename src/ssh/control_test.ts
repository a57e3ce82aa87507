import { deepStrictEqual, ok } from "node:assert/strict";
import { controlOptions, controlPath } from "./control.ts";
import { sshArgs } from "./options.ts";

Deno.test("controlPath() names the VM's address slot beside the VMM sockets", () => {
  deepStrictEqual(
    controlPath("/run/banger/vmm", "172.30.0.0/24", "172.30.0.7"),
    "/run/banger/vmm/7.ssh",
  );
});

Deno.test("controlPath() gives no path when the socket name would not fit in sun_path", () => {
  const deep = `/tmp/${"x".repeat(90)}`;
  deepStrictEqual(controlPath(deep, "172.30.0.0/24", "172.30.0.7"), undefined);
  // Without a path, ssh gets no control options and connects directly.
  deepStrictEqual(controlOptions(undefined, "client"), []);
});

Deno.test("sshArgs() makes every ssh of an identity with controlFor a client of the VM's master", () => {
  const args = sshArgs(
    {
      key: "/k",
      knownHosts: "/kh",
      controlFor: (ip) => `/run/${ip}.ssh`,
    },
    { name: "calm-otter", ip: "172.30.0.2" },
  );
  const text = args.join(" ");
  ok(text.includes("-o ControlMaster=no -o ControlPath=/run/172.30.0.2.ssh"));
  ok(!text.includes("ControlPersist"), "a client never starts a master");
  // The target stays last, so a command can follow it.
  deepStrictEqual(args.at(-1), "172.30.0.2");
});

Deno.test("sshArgs() with a master role starts a persistent master", () => {
  const args = sshArgs({ key: "/k", knownHosts: "/kh" }, {
    name: "calm-otter",
    ip: "172.30.0.2",
    control: { path: "/run/2.ssh", role: "master" },
  });
  const text = args.join(" ");
  ok(text.includes("-o ControlMaster=auto -o ControlPath=/run/2.ssh"));
  ok(/ControlPersist=\d+/.test(text));
});
