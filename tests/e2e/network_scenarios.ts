/**
 * End-to-end scenarios of guest networking: `<name>.vm` DNS, `vm ports`,
 * `ssh-config`, recreating a VM under the same name, and opt-in NAT with
 * real traffic to an "uplink" namespace. Boots are slow under TCG, so each
 * scenario reuses its VMs for several checks.
 *
 * @module
 */
import { join } from "node:path";
import { check, exec, type Scenario } from "./harness.ts";
import type { ScenarioDef } from "./scenarios.ts";
import { assertNothingLeft } from "./scenarios.ts";

const DNS_PORT = "42069";

interface VmJson {
  name: string;
  state: string;
  ip: string;
  tap: string;
  pid: number | null;
  nat: boolean;
}

async function vm(s: Scenario, name: string): Promise<VmJson> {
  const list = JSON.parse(
    (await s.banger(["vm", "list", "--json"], { expectCode: 0 })).stdout,
  ) as VmJson[];
  const found = list.find((v) => v.name === name);
  check(found, `VM "${name}" is not listed`);
  return found;
}

/**
 * A tiny HTTP server started in the guest (perl is in the golden image),
 * detached so the ssh session that starts it can end.
 */
const GUEST_HTTP_SERVER = "setsid perl -MIO::Socket::INET -e '" +
  "my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, " +
  "ReuseAddr => 1) or die; while (my $c = $s->accept) { <$c>; " +
  'print $c "HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"; ' +
  "close $c }' </dev/null >/dev/null 2>&1 &";

/** `dig` against the daemon: status and the A records it answered. */
async function dig(s: Scenario, name: string, tcp = false) {
  const out = await s.sh("dig", [
    "@127.0.0.1",
    "-p",
    DNS_PORT,
    "+time=2",
    "+tries=2",
    ...(tcp ? ["+tcp"] : []),
    name,
    "A",
  ]);
  s.log(`dig ${name}${tcp ? " +tcp" : ""}: ${out.stdout}`);
  return {
    status: /status: ([A-Z]+)/.exec(out.stdout)?.[1] ??
      `no answer (${out.code})`,
    addresses: out.stdout.split("\n")
      .filter((l) => l && !l.startsWith(";"))
      .map((l) => l.split(/\s+/)[4]),
  };
}

/** A plain OpenSSH client, reading only the scenario's ~/.ssh/config. */
async function plainSsh(s: Scenario, host: string, command: string) {
  const out = await s.sh("ssh", [
    "-F",
    join(s.home, ".ssh/config"),
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    host,
    command,
  ]);
  s.log(`ssh ${host} ${command}: exit ${out.code}\n${out.stdout}${out.stderr}`);
  return out;
}

async function knownHostLines(s: Scenario): Promise<string[]> {
  const text = await Deno.readTextFile(
    join(s.home, ".local/state/banger/ssh/known_hosts"),
  ).catch(() => "");
  return text.split("\n").filter((l) => l.trim());
}

interface Rule {
  family: string;
  chain: string;
  comment?: string;
  expr: unknown[];
}

async function nftRules(s: Scenario, comment: string): Promise<Rule[]> {
  const out = await s.sh("nft", ["-j", "list", "ruleset"]);
  return (JSON.parse(out.stdout) as { nftables: { rule?: Rule }[] }).nftables
    .flatMap((i) => i.rule ? [i.rule] : [])
    .filter((r) => r.comment === comment);
}

async function daemonPid(s: Scenario): Promise<number> {
  return Number(
    await Deno.readTextFile(join(s.root, "run/banger/daemon.pid")),
  );
}

/** Kills the daemon the hard way, as a crash would. */
async function crashDaemon(s: Scenario): Promise<void> {
  const pid = await daemonPid(s);
  await exec("kill", ["-KILL", String(pid)], {});
  for (let i = 0; i < 50; i++) {
    const alive = await exec("kill", ["-0", String(pid)], {});
    if (alive.code !== 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`daemon ${pid} survived SIGKILL`);
}

/**
 * An "uplink": a veth pair whose far end sits in a namespace of its own
 * (198.51.100.2) with a TCP server that answers with the peer address it
 * sees, which shows whether the guest's traffic was masqueraded.
 */
async function startUplink(s: Scenario) {
  const world = new Deno.Command("unshare", {
    args: ["--net", "sleep", "600"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const pid = String(world.pid);
  try {
    return await setUpUplink(s, world, pid);
  } catch (error) {
    world.kill("SIGKILL");
    await world.status;
    throw error;
  }
}

async function setUpUplink(
  s: Scenario,
  world: Deno.ChildProcess,
  pid: string,
) {
  // unshare execs sleep once the namespace exists; wait for that. (Deno
  // reads /proc only with --allow-all, hence readlink.)
  const ns = async (p: string) =>
    (await exec("readlink", [`/proc/${p}/ns/net`], {})).stdout.trim();
  const mine = await ns("self");
  for (let i = 0; i < 50; i++) {
    const theirs = await ns(pid);
    if (theirs && theirs !== mine) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const inWorld = (program: string, args: string[]) =>
    exec("nsenter", [`--net=/proc/${pid}/ns/net`, program, ...args], {});
  const steps: [string, string[]][] = [
    ["ip", ["link", "add", "up0", "type", "veth", "peer", "name", "up1"]],
    ["ip", ["link", "set", "up1", "netns", pid]],
    ["ip", ["addr", "add", "198.51.100.1/24", "dev", "up0"]],
    ["ip", ["link", "set", "up0", "up"]],
  ];
  for (const [program, args] of steps) {
    const out = await exec(program, args, {});
    check(out.code === 0, `${program} ${args.join(" ")}: ${out.stderr}`);
  }
  for (
    const args of [
      ["addr", "add", "198.51.100.2/24", "dev", "up1"],
      ["link", "set", "up1", "up"],
      ["link", "set", "lo", "up"],
    ]
  ) {
    const out = await inWorld("ip", args);
    check(out.code === 0, `ip ${args.join(" ")} (uplink): ${out.stderr}`);
  }
  const script = join(s.home, "uplink_server.ts");
  await Deno.writeTextFile(
    script,
    `for await (const c of Deno.listen({ port: 8080 })) {
       const peer = (c.remoteAddr as Deno.NetAddr).hostname;
       const body = "from " + peer + "\\n";
       await c.write(new TextEncoder().encode(
         "HTTP/1.0 200 OK\\r\\ncontent-length: " + body.length + "\\r\\n\\r\\n" + body,
       )).catch(() => {});
       c.close();
     }`,
  );
  const server = new Deno.Command("nsenter", {
    args: [
      `--net=/proc/${pid}/ns/net`,
      Deno.execPath(),
      "run",
      "--allow-net=0.0.0.0:8080",
      script,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    stop: async () => {
      for (const child of [server, world]) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Gone already.
        }
        await child.status;
      }
    },
  };
}

/** Scenarios of this file, merged into the registry by scenarios.ts. */
export const NETWORK_SCENARIOS: Record<string, ScenarioDef> = {
  "guest-names": {
    description:
      "<name>.vm over DNS (dig, UDP+TCP, restart), vm ports, ssh-config with a plain ssh, delete+recreate of the same name",
    core: true,
    async run(s) {
      await s.banger(["vm", "run", "--name", "web", "--", "true"], {
        expectCode: 0,
      });
      const web = await vm(s, "web");

      // DNS: the running VM by name over UDP and TCP; unknown names fail.
      const udp = await dig(s, "web.vm");
      check(
        udp.status === "NOERROR" && udp.addresses.join() === web.ip,
        `dig web.vm: ${JSON.stringify(udp)}, expected ${web.ip}`,
      );
      const tcp = await dig(s, "web.vm", true);
      check(
        tcp.addresses.join() === web.ip,
        `dig +tcp web.vm: ${JSON.stringify(tcp)}`,
      );
      const nobody = await dig(s, "nobody.vm");
      check(nobody.status === "NXDOMAIN", `dig nobody.vm: ${nobody.status}`);

      // vm ports: sshd listens on 22.
      const ports = await s.banger(["vm", "ports", "web"], { expectCode: 0 });
      check(
        /^web\.vm:22\s+tcp\s+sshd/m.test(ports.stdout),
        `vm ports shows no sshd on web.vm:22:\n${ports.stdout}`,
      );
      const json = JSON.parse(
        (await s.banger(["vm", "ports", "web", "--json"], { expectCode: 0 }))
          .stdout,
      ) as { endpoint: string; proto: string; process: string }[];
      check(
        json.some((p) =>
          p.endpoint === "web.vm:22" && p.proto === "tcp" &&
          p.process === "sshd"
        ),
        `vm ports --json: ${JSON.stringify(json)}`,
      );

      // A guest HTTP server gets a link that works from the host.
      await s.banger(
        ["vm", "ssh", "web", "--", "sh", "-c", GUEST_HTTP_SERVER],
        {
          expectCode: 0,
        },
      );
      // The server binds its port a moment after the ssh that started it
      // returns (perl starts slowly under TCG): ask until it listens.
      const httpLink = /^web\.vm:8080\s+tcp\s+perl\s+http:\/\/web\.vm:8080\/$/m;
      let withHttp = "";
      for (let i = 0; i < 20 && !httpLink.test(withHttp); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500));
        withHttp = (await s.banger(["vm", "ports", "web"], { expectCode: 0 }))
          .stdout;
      }
      check(
        httpLink.test(withHttp),
        `vm ports shows no http link for 8080:\n${withHttp}`,
      );
      const page = await s.sh("curl", [
        "-s",
        "-m",
        "10",
        "--resolve",
        `web.vm:8080:${web.ip}`,
        "http://web.vm:8080/",
      ]);
      check(page.stdout === "ok", `the link answered "${page.stdout}"`);

      // ssh-config: a plain ssh client reaches web.vm (no resolved here).
      await s.banger(["ssh-config", "--install"], { expectCode: 0 });
      const userConfig = join(s.home, ".ssh/config");
      const installed = await Deno.readTextFile(userConfig);
      await s.banger(["ssh-config", "--install"], { expectCode: 0 });
      check(
        (await Deno.readTextFile(userConfig)) === installed,
        "a second --install changed ~/.ssh/config",
      );
      const hello = await plainSsh(s, "web.vm", "hostname");
      check(
        hello.code === 0 && hello.stdout.trim() === "web",
        `ssh web.vm hostname: exit ${hello.code}: ${hello.stderr}`,
      );

      // The daemon's records come back after a restart.
      await s.banger(["daemon", "stop"], { expectCode: 0 });
      const down = await dig(s, "web.vm");
      check(down.addresses.length === 0, "DNS answered with no daemon");
      await s.banger(["vm", "list"], { expectCode: 0 });
      const again = await dig(s, "web.vm");
      check(
        again.addresses.join() === web.ip,
        `dig web.vm after a daemon restart: ${JSON.stringify(again)}`,
      );

      // Delete: the record and the pinned host key (by name and by IP) go.
      check(
        (await knownHostLines(s)).some((l) => l.startsWith("web.vm ")),
        "no host key was pinned for web.vm",
      );
      await s.banger(["vm", "delete", "web"], { expectCode: 0 });
      const gone = await dig(s, "web.vm");
      check(gone.status === "NXDOMAIN", `dig after delete: ${gone.status}`);
      const left = (await knownHostLines(s)).filter((l) =>
        l.startsWith("web.vm ") || l.startsWith(`${web.ip} `)
      );
      check(left.length === 0, `known_hosts lines left: ${left.join("; ")}`);

      // Same name again: same address, new host key, no prompt anywhere.
      await s.banger(["vm", "run", "--name", "web", "--", "true"], {
        expectCode: 0,
      });
      const reborn = await vm(s, "web");
      check(reborn.ip === web.ip, `address ${reborn.ip}, expected ${web.ip}`);
      const viaBanger = await s.banger(["vm", "ssh", "web", "--", "hostname"]);
      check(
        viaBanger.code === 0 && viaBanger.stdout.trim() === "web",
        `vm ssh after recreate: exit ${viaBanger.code}: ${viaBanger.stderr}`,
      );
      const viaPlain = await plainSsh(s, "web.vm", "hostname");
      check(
        viaPlain.code === 0 && viaPlain.stdout.trim() === "web",
        `ssh web.vm after recreate: exit ${viaPlain.code}: ${viaPlain.stderr}`,
      );

      await s.banger(["ssh-config", "--uninstall"], { expectCode: 0 });
      check(
        !(await Deno.readTextFile(userConfig)).includes("banger"),
        "--uninstall left banger's block in ~/.ssh/config",
      );
      await s.banger(["vm", "delete", "web"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "nat-rules": {
    description:
      "--nat masquerades exactly the guest's /32 (real traffic), others stay isolated; rules survive adoption, go on delete and on reconcile after a crash",
    core: true,
    async run(s) {
      const uplink = await startUplink(s);
      try {
        const curl = ["curl", "-s", "-m", "5", "http://198.51.100.2:8080/"];
        const nat = await s.banger(
          ["vm", "run", "--nat", "--name", "natty", "--", ...curl],
        );
        check(
          nat.code === 0 && nat.stdout.trim() === "from 198.51.100.1",
          `NAT guest's request: exit ${nat.code}, "${nat.stdout.trim()}"`,
        );
        const natty = await vm(s, "natty");
        check(natty.nat, "vm list does not record --nat");

        const rules = await nftRules(s, natty.tap);
        const text = (await s.sh("nft", ["list", "ruleset"])).stdout;
        check(
          rules.length === 4 &&
            text.includes(
              `ip saddr ${natty.ip} oifname != "br-banger" masquerade comment "${natty.tap}"`,
            ) &&
            text.includes(
              `iifname != "${natty.tap}" ip saddr ${natty.ip} drop`,
            ),
          `NAT rules of ${natty.tap}:\n${text}`,
        );
        const forwarding = await s.sh("sysctl", ["-n", "net.ipv4.ip_forward"]);
        check(forwarding.stdout.trim() === "1", "IP forwarding is off");

        // Without --nat the guest cannot leave the host.
        const plain = await s.banger(
          ["vm", "run", "--rm", "--name", "plain", "--", ...curl],
        );
        check(
          plain.code !== 0 && !plain.stdout.includes("from"),
          `guest without --nat reached the uplink: ${plain.stdout}`,
        );

        // A crashed daemon's successor adopts the VM: still one rule set.
        await crashDaemon(s);
        await s.banger(["vm", "list"], { expectCode: 0 });
        check(
          (await nftRules(s, natty.tap)).length === 4,
          "adopting the VM did not leave exactly its 4 NAT rules",
        );

        // Delete removes them.
        await s.banger(["vm", "delete", "natty"], { expectCode: 0 });
        check(
          (await nftRules(s, natty.tap)).length === 0,
          "vm delete left NAT rules",
        );

        // Daemon and VMM both die: reconcile removes the rules from the
        // durable state alone.
        await s.banger(
          ["vm", "run", "--nat", "--name", "crashy", "--", "true"],
          {
            expectCode: 0,
          },
        );
        const crashy = await vm(s, "crashy");
        check(
          (await nftRules(s, crashy.tap)).length === 4,
          "no NAT rules for the second guest",
        );
        await crashDaemon(s);
        await exec("kill", ["-KILL", String(crashy.pid)], {});
        await new Promise((r) => setTimeout(r, 500));
        const after = await vm(s, "crashy");
        check(
          after.state === "stopped",
          `state after reconcile: ${after.state}`,
        );
        check(
          (await nftRules(s, crashy.tap)).length === 0,
          "reconcile left the dead VM's NAT rules",
        );
        check(
          !(await s.links("bgtap")).includes(crashy.tap),
          "reconcile left the dead VM's tap",
        );
        await s.banger(["vm", "delete", "crashy"], { expectCode: 0 });
        await assertNothingLeft(s);
      } finally {
        await uplink.stop();
      }
    },
  },
};
