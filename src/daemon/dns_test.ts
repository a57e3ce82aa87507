import dgram from "node:dgram";
import { Logger } from "../util/log.ts";
import { run } from "../util/exec.ts";
import { startDnsServer } from "./dns.ts";

const quiet = new Logger(() => {});

function equal(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(
      `${what}: got ${JSON.stringify(actual)}, want ${
        JSON.stringify(expected)
      }`,
    );
  }
}

async function dig(port: number, ...args: string[]) {
  const out = await run("dig", [
    "@127.0.0.1",
    "-p",
    String(port),
    "+time=2",
    "+tries=1",
    ...args,
  ]);
  const status = /status: ([A-Z]+)/.exec(out.stdout)?.[1];
  const answers = out.stdout.split("\n")
    .filter((l) => l && !l.startsWith(";"))
    .map((l) => l.split(/\s+/))
    .map((f) => `${f[0]} ${f[1]} ${f[3]} ${f[4]}`);
  return { status, answers, flags: /flags: ([a-z ]+);/.exec(out.stdout)?.[1] };
}

Deno.test("DNS server answers A for running VMs over UDP and TCP, as dig sees it", async () => {
  const vms = new Map([["calm-otter", "172.30.0.2"]]);
  const server = await startDnsServer({
    lookup: (name) => vms.get(name),
    log: quiet,
    port: 0,
  });
  try {
    const udp = await dig(server.port, "calm-otter.vm", "A");
    equal(udp.status, "NOERROR", "status over UDP");
    equal(udp.answers, ["calm-otter.vm. 5 A 172.30.0.2"], "UDP answer");
    equal(udp.flags?.split(" ").includes("aa"), true, "authoritative flag");

    const tcp = await dig(server.port, "+tcp", "CALM-Otter.VM.", "A");
    equal(tcp.status, "NOERROR", "status over TCP");
    equal(tcp.answers, ["CALM-Otter.VM. 5 A 172.30.0.2"], "TCP answer");

    const unknown = await dig(server.port, "nobody.vm", "A");
    equal(unknown.status, "NXDOMAIN", "unknown name");
    equal(unknown.answers, [], "unknown name answers");
    equal(
      (await dig(server.port, "+tcp", "nobody.vm")).status,
      "NXDOMAIN",
      "unknown name over TCP",
    );

    const aaaa = await dig(server.port, "calm-otter.vm", "AAAA");
    equal([aaaa.status, aaaa.answers], ["NOERROR", []], "AAAA of a VM");

    equal(
      (await dig(server.port, "example.com", "A")).status,
      "REFUSED",
      "a name outside .vm",
    );
    equal(
      (await dig(server.port, "bad_label.vm", "A")).status,
      "NXDOMAIN",
      "a name that cannot be a VM",
    );

    // What the lookup says now is what DNS says now: a stopped VM is gone.
    vms.delete("calm-otter");
    equal(
      (await dig(server.port, "calm-otter.vm")).status,
      "NXDOMAIN",
      "after the VM stopped",
    );
    vms.set("calm-otter", "172.30.0.7");
    equal(
      (await dig(server.port, "calm-otter.vm")).answers,
      ["calm-otter.vm. 5 A 172.30.0.7"],
      "after it came back",
    );
  } finally {
    await server.close();
  }
});

Deno.test("DNS server survives garbage on UDP and TCP", async () => {
  const server = await startDnsServer({
    lookup: () => "172.30.0.2",
    log: quiet,
    port: 0,
  });
  try {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await conn.write(new Uint8Array([0, 3, 1, 2, 3]));
    const buffer = new Uint8Array(512);
    const n = await conn.read(buffer);
    // FORMERR for a message too short to be a query, then the connection
    // either stays or closes; the server must still answer others.
    equal(n !== null && n > 2 ? buffer[5]! & 0x0f : 1, 1, "FORMERR rcode");
    conn.close();
    const udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) =>
      udp.send(
        new Uint8Array([0xff]),
        server.port,
        "127.0.0.1",
        () => resolve(),
      )
    );
    udp.close();
    equal(
      (await dig(server.port, "a.vm")).answers,
      ["a.vm. 5 A 172.30.0.2"],
      "an answer after garbage",
    );
  } finally {
    await server.close();
  }
});
