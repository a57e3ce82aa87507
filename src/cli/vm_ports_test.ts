import { formatPorts, parsePorts } from "./vm_ports.ts";

const SS =
  `tcp   LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=301,fd=3))
tcp   LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=301,fd=4))
tcp   LISTEN 0      5          127.0.0.1:6000      0.0.0.0:*    users:(("python3",pid=420,fd=3))
tcp   LISTEN 0      5                  *:8080            *:*    users:(("python3",pid=421,fd=3))
udp   UNCONN 0      0      127.0.0.53%lo:53        0.0.0.0:*    users:(("resolved",pid=9,fd=12))
--- banger http probe ---
http 8080
`;

Deno.test("parsePorts() merges address families and marks HTTP and loopback", () => {
  const ports = parsePorts("web", SS);
  const summary = ports.map((p) =>
    `${p.endpoint} ${p.proto} ${p.process} ${
      p.addresses.join(",")
    } ${p.reachable} ${p.url}`
  );
  const want = [
    "web.vm:22 tcp sshd 0.0.0.0,[::] true null",
    "web.vm:53 udp resolved 127.0.0.53 false null",
    "web.vm:6000 tcp python3 127.0.0.1 false null",
    "web.vm:8080 tcp python3 * true http://web.vm:8080/",
  ];
  if (JSON.stringify(summary) !== JSON.stringify(want)) {
    throw new Error(`got ${JSON.stringify(summary, null, 1)}`);
  }
  const text = formatPorts(ports);
  if (!text.includes("web.vm:8080  tcp  python3     http://web.vm:8080/")) {
    throw new Error(`unexpected table:\n${text}`);
  }
});
