/**
 * The helper's network operations, in a namespace of their own: bridge,
 * taps from the warm pool, NAT rules scoped to one guest, resolver routing.
 */
import { assert, assertEquals } from "./_assert.ts";
import { type NetnsHelper, startHelperInNetns } from "./_helper_netns.ts";

const BRIDGE = { name: "br-banger", address: "172.30.0.1", prefix: 24 };

interface Rule {
  family: string;
  chain: string;
  comment?: string;
  expr: unknown[];
}

async function rules(h: NetnsHelper, comment?: string): Promise<Rule[]> {
  const ruleset = JSON.parse(
    await h.inNs("nft", ["-j", "list", "ruleset"]),
  ) as { nftables: { rule?: Rule }[] };
  return ruleset.nftables.flatMap((i) => i.rule ? [i.rule] : [])
    .filter((r) => comment === undefined || r.comment === comment);
}

async function link(h: NetnsHelper, name: string) {
  const out = await h.inNs("ip", ["-j", "-d", "link", "show"]);
  return (JSON.parse(out) as {
    ifname: string;
    master?: string;
    flags: string[];
    linkinfo?: { info_data?: { user?: string } };
  }[]).find((l) => l.ifname === name);
}

async function poolReady(h: NetnsHelper, size: number): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const status = await h.call("tap.pool.status", {}) as { ready: string[] };
    if (status.ready.length === size || Date.now() > deadline) {
      return status.ready;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "helper claims taps from a warm pool and refills it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const h = await startHelperInNetns("tap_pool_size = 3\n");
    try {
      await h.call("bridge.ensure", BRIDGE);
      const warm = await poolReady(h, 3);
      assertEquals(warm, ["bgpool0", "bgpool1", "bgpool2"]);
      for (const name of warm) {
        const l = await link(h, name);
        assertEquals(l?.master, "br-banger", `${name} not on the bridge`);
        assert(!l?.flags.includes("UP"), `${name} is up while idle`);
      }

      await h.call("tap.create", {
        name: "bgtap2",
        bridge: "br-banger",
        owner: 0,
      });
      const tap = await link(h, "bgtap2");
      assertEquals(tap?.master, "br-banger");
      assert(tap?.flags.includes("UP"), "claimed tap is not up");
      assertEquals(tap?.linkinfo?.info_data?.user, "root");
      // One warm tap became bgtap2; the refill replaced it.
      assertEquals(await poolReady(h, 3), ["bgpool0", "bgpool1", "bgpool2"]);

      await h.call("tap.delete", { name: "bgtap2" });
      assertEquals(await link(h, "bgtap2"), undefined);
    } finally {
      await h.stop();
    }
  },
});

Deno.test({
  name:
    "nat.up masquerades exactly the guest's /32, idempotently; nat.down removes it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const h = await startHelperInNetns("tap_pool_size = 0\n");
    try {
      await h.call("bridge.ensure", BRIDGE);
      // Isolation is in place before any NAT: the bridge is never routed.
      const isolate = await rules(h, "isolate br-banger");
      assertEquals(isolate.length, 2);
      assertEquals(
        (await h.inNs("sysctl", ["-n", "net.ipv4.ip_forward"])).trim(),
        "0",
      );

      const up = { tap: "bgtap5", address: "172.30.0.5", bridge: "br-banger" };
      await h.call("nat.up", up);
      await h.call("nat.up", up);
      const mine = await rules(h, "bgtap5");
      assertEquals(
        mine.map((r) => `${r.family} ${r.chain}`).sort(),
        [
          "bridge prerouting",
          "ip forward",
          "ip forward",
          "ip postrouting",
        ],
      );
      const text = await h.inNs("nft", ["list", "table", "ip", "banger"]);
      assert(
        text.includes(
          'ip saddr 172.30.0.5 oifname != "br-banger" masquerade comment "bgtap5"',
        ),
        `no masquerade for the /32:\n${text}`,
      );
      const bridgeText = await h.inNs("nft", [
        "list",
        "table",
        "bridge",
        "banger",
      ]);
      assert(
        bridgeText.includes('iifname != "bgtap5" ip saddr 172.30.0.5 drop'),
        `no anti-spoofing rule keyed on the tap:\n${bridgeText}`,
      );
      // The guest's accepts come before the isolation drops.
      const forward = (await rules(h)).filter((r) =>
        r.family === "ip" && r.chain === "forward"
      ).map((r) => r.comment);
      assertEquals(forward, [
        "bgtap5",
        "bgtap5",
        "isolate br-banger",
        "isolate br-banger",
      ]);
      assertEquals(
        (await h.inNs("sysctl", ["-n", "net.ipv4.ip_forward"])).trim(),
        "1",
      );

      // Another guest's rules are independent.
      await h.call("nat.up", {
        tap: "bgtap6",
        address: "172.30.0.6",
        bridge: "br-banger",
      });
      assertEquals(
        await h.call("nat.down", { tap: "bgtap5" }),
        { tap: "bgtap5", removed: 4 },
      );
      assertEquals((await rules(h, "bgtap5")).length, 0);
      assertEquals((await rules(h, "bgtap6")).length, 4);
      assertEquals(
        await h.call("nat.down", { tap: "bgtap5" }),
        { tap: "bgtap5", removed: 0 },
      );
    } finally {
      await h.stop();
    }
  },
});

// On a host where resolved runs, the helper would apply the commands (to a
// bridge only the test namespace has), so this test needs a host without it.
const resolvedRuns = await Deno.stat("/run/systemd/resolve/io.systemd.Resolve")
  .then(() => true, () => false);

Deno.test({
  name:
    "resolver.route reports the resolvectl commands when resolved is absent",
  ignore: resolvedRuns,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const h = await startHelperInNetns();
    try {
      await h.call("bridge.ensure", BRIDGE);
      const routed = await h.call("resolver.route", {
        bridge: "br-banger",
        port: 42069,
      });
      assertEquals(routed, {
        applied: false,
        commands: [
          ["resolvectl", "dns", "br-banger", "127.0.0.1:42069"],
          ["resolvectl", "domain", "br-banger", "~vm"],
          ["resolvectl", "default-route", "br-banger", "false"],
        ],
      });
    } finally {
      await h.stop();
    }
  },
});
