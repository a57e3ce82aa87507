/**
 * A compromised daemon must not be able to touch anything but banger's own
 * bridge, taps and nftables tables. Every request below names something
 * else; each must be refused with `bad_request`, and the helper's network
 * namespace must be exactly as it was.
 */
import { assertEquals, assertNotEquals } from "./_assert.ts";
import { RpcError } from "../../src/protocol/envelope.ts";
import { startHelperInNetns } from "./_helper_netns.ts";

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

Deno.test({
  name:
    "helper refuses foreign names, addresses and paths, leaving the host unchanged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const helper = await startHelperInNetns();
    try {
      const before = await helper.snapshot();
      for (const [method, params, what] of REFUSED) {
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

      // The comparison can see a change: a valid request makes one.
      await helper.call("bridge.ensure", {
        name: "br-banger",
        address: "172.30.0.1",
        prefix: 24,
      });
      assertNotEquals(await helper.snapshot(), before);
    } finally {
      await helper.stop();
    }
  },
});
