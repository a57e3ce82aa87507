/**
 * A compromised daemon must not be able to touch anything but banger's own
 * bridge, taps and nftables tables. Every request below names something
 * else; each must be refused with `bad_request`, and the helper's network
 * namespace must be exactly as it was.
 */
import { assertEquals, assertNotEquals } from "./_assert.ts";
import { RpcError } from "../../src/protocol/envelope.ts";
import { startHelperInNetns } from "./_helper_netns.ts";
import { join } from "node:path";
import { run } from "../../src/util/exec.ts";

const LONG = "bgtap" + "1".repeat(5000);

/** [method, params, what it tries] */
const REFUSED: [string, unknown, string][] = [
  [
    "bridge.ensure",
    { name: "eth0", address: "172.30.0.1", prefix: 24 },
    "eth0 as bridge",
  ],
  [
    "bridge.ensure",
    { name: "lo", address: "172.30.0.1", prefix: 24 },
    "lo as bridge",
  ],
  [
    "bridge.ensure",
    { name: "docker0", address: "172.30.0.1", prefix: 24 },
    "docker0 as bridge",
  ],
  ["bridge.ensure", {
    name: "br-banger;reboot",
    address: "172.30.0.1",
    prefix: 24,
  }, "shell metacharacters"],
  ["bridge.ensure", {
    name: "br-banger$(id)",
    address: "172.30.0.1",
    prefix: 24,
  }, "command substitution"],
  [
    "bridge.ensure",
    { name: "br-banger\n", address: "172.30.0.1", prefix: 24 },
    "trailing newline",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "0.0.0.0", prefix: 0 },
    "0.0.0.0/0",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "0.0.0.0/0", prefix: 24 },
    "CIDR text as address",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "10.1.2.3", prefix: 24 },
    "address outside the range",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "172.30.0.1", prefix: 8 },
    "wider prefix",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "172.30.0.255", prefix: 24 },
    "broadcast address",
  ],
  [
    "bridge.ensure",
    { name: "br-banger", address: "172.30.0.1 ", prefix: 24 },
    "padded address",
  ],
  [
    "tap.create",
    { name: "eth0", bridge: "br-banger", owner: 0 },
    "eth0 as tap",
  ],
  ["tap.create", { name: "lo", bridge: "br-banger", owner: 0 }, "lo as tap"],
  [
    "tap.create",
    { name: "docker0", bridge: "br-banger", owner: 0 },
    "docker0 as tap",
  ],
  [
    "tap.create",
    { name: "bgtap2", bridge: "docker0", owner: 0 },
    "tap on docker0",
  ],
  [
    "tap.create",
    { name: "bgtap2", bridge: "br-banger", owner: 4242 },
    "tap for another user",
  ],
  [
    "tap.create",
    { name: "bgtap2 up", bridge: "br-banger", owner: 0 },
    "extra argv words",
  ],
  [
    "tap.create",
    { name: "bgpool0", bridge: "br-banger", owner: 0 },
    "a pool tap name",
  ],
  ["tap.create", {
    name: "bgtap2",
    bridge: "br-banger",
    owner: 0,
    path: "/etc/shadow",
  }, "an extra path field"],
  ["tap.delete", { name: "eth0" }, "deleting eth0"],
  ["tap.delete", { name: "lo" }, "deleting lo"],
  ["tap.delete", { name: "docker0" }, "deleting docker0"],
  ["tap.delete", { name: "../../etc/passwd" }, "a path outside banger's state"],
  [
    "tap.delete",
    { name: "/var/lib/banger/vms/x" },
    "a path inside banger's state",
  ],
  ["tap.delete", { name: LONG }, "an oversized name"],
  ["tap.delete", { name: "bgtap" + "9".repeat(60) }, "an overlong tap number"],
  [
    "nat.up",
    { tap: "eth0", address: "172.30.0.2", bridge: "br-banger" },
    "NAT keyed on eth0",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "0.0.0.0/0", bridge: "br-banger" },
    "masquerade 0.0.0.0/0",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "0.0.0.0", bridge: "br-banger" },
    "masquerade 0.0.0.0",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "192.168.1.10", bridge: "br-banger" },
    "masquerade outside the range",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "172.30.0.0", bridge: "br-banger" },
    "the network address",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "172.30.0.2/24", bridge: "br-banger" },
    "a /24 instead of a /32",
  ],
  [
    "nat.up",
    { tap: "bgtap2", address: "172.30.0.2", bridge: "docker0" },
    "NAT through docker0",
  ],
  [
    "nat.up",
    { tap: "bgtap3", address: "172.30.0.2", bridge: "br-banger" },
    "an address behind another tap",
  ],
  ["nat.up", {
    tap: 'bgtap2" ; flush ruleset',
    address: "172.30.0.2",
    bridge: "br-banger",
  }, "nft script injection"],
  ["nat.up", {
    tap: "bgtap2",
    address: "172.30.0.2",
    bridge: "br-banger",
    table: "filter",
  }, "an extra table field"],
  ["nat.down", { tap: "lo" }, "NAT down on lo"],
  ["nat.down", { tap: "bgtap2\nflush ruleset" }, "nft newline injection"],
  ["nat.down", { tap: LONG }, "an oversized tap"],
  ["resolver.route", { bridge: "eth0", port: 42069 }, "routing DNS on eth0"],
  ["resolver.route", { bridge: "br-banger", port: 53 }, "a privileged port"],
  ["resolver.route", { bridge: "br-banger", port: 0 }, "port 0"],
  [
    "resolver.route",
    { bridge: "br-banger", port: 70000 },
    "a port out of range",
  ],
  [
    "resolver.route",
    { bridge: "br-banger", port: "42069; id" },
    "a port string",
  ],
];

const VM = "0123456789ab";
const OTHER_VM = "ba9876543210";

/**
 * Files a compromised daemon could point `jail.launch` at, made in the
 * test helper's state directory: a symlink to /etc/shadow, a directory
 * that is a symlink to /etc, a block device node, and another VM's disk.
 */
async function plantJailBait(root: string): Promise<string> {
  const state = join(root, "var/lib/banger");
  const vm = join(state, "vms", VM);
  const images = join(state, "images/debian");
  await Deno.mkdir(vm, { recursive: true });
  await Deno.mkdir(join(state, "vms", OTHER_VM), { recursive: true });
  await Deno.mkdir(images, { recursive: true });
  for (const file of ["root.img", "fc.log", "metrics.json", "console.log"]) {
    await Deno.writeTextFile(join(vm, file), "");
  }
  await Deno.writeTextFile(join(state, "vms", OTHER_VM, "root.img"), "");
  await Deno.writeTextFile(join(images, "vmlinux"), "");
  await Deno.symlink("/etc/shadow", join(images, "shadow"));
  await Deno.symlink("/etc", join(vm, "etc"));
  await run("mknod", [join(vm, "disk.blk"), "b", "7", "0"]);
  return state;
}

/** A valid jail.launch request for the planted VM. */
function goodJailRequest(state: string) {
  const vm = join(state, "vms", VM);
  return {
    id: VM,
    kernel: join(state, "images/debian/vmlinux"),
    drives: [{ id: "root", path: join(vm, "root.img") }],
    log: join(vm, "fc.log"),
    metrics: join(vm, "metrics.json"),
    console: join(vm, "console.log"),
    enablePci: false,
  };
}

/** jail.launch requests, each with one bad path or field. */
function jailRequests(state: string): [string, unknown, string][] {
  const vm = join(state, "vms", VM);
  const good = goodJailRequest(state);
  const bad = (change: Record<string, unknown>, what: string) =>
    ["jail.launch", { ...good, ...change }, what] as [string, unknown, string];
  const drive = (path: string) => ({ drives: [{ id: "root", path }] });
  return [
    bad({ kernel: "/etc/shadow" }, "a host file as kernel"),
    bad(
      { kernel: join(state, "images/debian/../../../../etc/shadow") },
      "traversal out of the state",
    ),
    bad({ kernel: join(state, "images/debian/shadow") }, "a symlink"),
    bad(drive(join(vm, "etc/shadow")), "a symlinked directory on the way"),
    bad(drive(join(vm, "disk.blk")), "a block device node"),
    bad(drive("/dev/loop0"), "a host block device"),
    bad(
      drive(join(state, "vms", OTHER_VM, "root.img")),
      "another VM's disk",
    ),
    bad({ log: join(state, "images/debian/vmlinux") }, "a log outside the VM"),
    bad({ id: "../../../etc" }, "a traversing id"),
    bad({ drives: [{ id: "a;b", path: join(vm, "root.img") }] }, "drive id"),
    bad({ execFile: "/bin/sh" }, "an exec file from the request"),
    ["jail.terminate", { id: "../../etc" }, "terminating a foreign jail"],
  ];
}

Deno.test({
  name:
    "helper refuses foreign names, addresses and paths, leaving the host unchanged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // A stand-in Firecracker and jailer are configured, so that jail
    // requests get as far as their paths.
    const standin = new URL("../firecracker_standin/", import.meta.url)
      .pathname;
    const helper = await startHelperInNetns(
      `firecracker_bin = "${standin}firecracker"\njailer_bin = "${standin}jailer"\n`,
    );
    try {
      // Real interfaces and tables of other owners, for the requests that
      // name them to find.
      await helper.inNs("ip", [
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0peer",
      ]);
      await helper.inNs("ip", ["link", "add", "docker0", "type", "bridge"]);
      await helper.inNs("ip", ["addr", "add", "10.9.0.1/24", "dev", "eth0"]);
      await helper.inNs("nft", ["add", "table", "ip", "filter"]);
      await helper.inNs("nft", [
        "add",
        "chain",
        "ip",
        "filter",
        "forward",
        "{ type filter hook forward priority 0 ; }",
      ]);
      const state = await plantJailBait(helper.root);
      const before = await helper.snapshot();
      for (
        const [method, params, what] of [...REFUSED, ...jailRequests(state)]
      ) {
        await t.step(`${method}: ${what}`, async () => {
          let code = "accepted";
          try {
            await helper.call(method, params);
          } catch (error) {
            code = error instanceof RpcError ? error.code : String(error);
          }
          assertEquals(code, "bad_request");
        });
      }
      const after = await helper.snapshot();
      assertEquals(after, before);
      // No jail was staged for any of them.
      const jails = join(helper.root, "var/lib/banger-root/jail/firecracker");
      const staged = await Array.fromAsync(Deno.readDir(jails)).catch(() => []);
      assertEquals(staged, []);

      // The comparison can see a change: a valid request makes one.
      await helper.call("bridge.ensure", {
        name: "br-banger",
        address: "172.30.0.1",
        prefix: 24,
      });
      assertNotEquals(await helper.snapshot(), before);

      // And the jail requests were refused for their paths alone: the
      // same request with good ones stages a jail and starts the jailer.
      const launched = await helper.call("jail.launch", goodJailRequest(state));
      assertEquals(typeof (launched as { pid: number }).pid, "number");
      assertEquals(await helper.call("jail.terminate", { id: VM }), {
        id: VM,
        removed: true,
      });
    } finally {
      await helper.stop();
    }
  },
});
