/**
 * `banger vm ports <vm…> [--json]`: the guest's listening sockets, as
 * `<name>.vm:<port>`, with an `http://` link where a TCP port answers HTTP.
 *
 * One ssh call per VM runs `ss` in the guest and, for each TCP port, one
 * short HTTP probe from inside the guest (so ports bound to the guest's
 * loopback are probed too; whether they are reachable from the host is
 * shown separately).
 *
 * @module
 */
import { type VmInfo, VmInfoSchema } from "../protocol/daemon.ts";
import { hostAlias, sshArgs, type SshIdentity } from "../ssh/options.ts";
import { run } from "../util/exec.ts";
import type { DaemonClient } from "./daemon_client.ts";

/** One listening socket in a guest. */
export interface GuestPort {
  vm: string;
  /** `<name>.vm:<port>`. */
  endpoint: string;
  proto: "tcp" | "udp";
  port: number;
  /** Local addresses it is bound to (e.g. `0.0.0.0`, `[::]`). */
  addresses: string[];
  /** False when bound only to the guest's loopback. */
  reachable: boolean;
  process: string | null;
  /** `http://<name>.vm:<port>/` when the port answered an HTTP request. */
  url: string | null;
}

/** Separates `ss` output from the HTTP probe results. */
const PROBE_MARKER = "--- banger http probe ---";

/**
 * The guest-side script: listeners, then `http <port>` per TCP port that
 * answers HTTP within a second. Fixed text; no host value goes in it.
 */
export const PORTS_SCRIPT = [
  "ss -H -l -n -t -u -p",
  `echo '${PROBE_MARKER}'`,
  "for p in $(ss -H -l -n -t | awk '{print $4}' | sed 's/.*://' | sort -un); do",
  '  if curl -s -m 1 -o /dev/null "http://127.0.0.1:$p/"; then echo "http $p"; fi',
  "done",
].join("\n");

/** Parses the output of {@linkcode PORTS_SCRIPT} for VM `name`. */
export function parsePorts(name: string, output: string): GuestPort[] {
  const [listing = "", probe = ""] = output.split(PROBE_MARKER);
  const http = new Set(
    probe.split("\n").map((l) => /^http (\d+)$/.exec(l.trim())?.[1])
      .filter((p): p is string => p !== undefined).map(Number),
  );
  const byKey = new Map<string, GuestPort>();
  for (const line of listing.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const proto = fields[0];
    if (proto !== "tcp" && proto !== "udp") continue;
    const local = fields[4]!;
    const split = local.lastIndexOf(":");
    const port = Number(local.slice(split + 1));
    if (split < 0 || !Number.isInteger(port)) continue;
    // `127.0.0.53%lo` names the interface; the address is before the %.
    const address = local.slice(0, split).replace(/%.*$/, "");
    const process = /users:\(\("([^"]+)"/.exec(line)?.[1] ?? null;
    const key = `${proto}/${port}`;
    const entry = byKey.get(key) ?? {
      vm: name,
      endpoint: `${hostAlias(name)}:${port}`,
      proto,
      port,
      addresses: [],
      reachable: false,
      process,
      url: proto === "tcp" && http.has(port)
        ? `http://${hostAlias(name)}:${port}/`
        : null,
    };
    if (!entry.addresses.includes(address)) entry.addresses.push(address);
    entry.reachable ||= !isLoopback(address);
    entry.process ??= process;
    byKey.set(key, entry);
  }
  return [...byKey.values()].sort((a, b) =>
    a.port - b.port || a.proto.localeCompare(b.proto)
  );
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "[::1]";
}

/** Lists the ports of one running VM over ssh. */
export async function guestPorts(
  vm: VmInfo,
  ssh: SshIdentity,
): Promise<GuestPort[]> {
  if (vm.state !== "running") {
    throw new Error(`Cannot list ports of VM "${vm.name}": it is ${vm.state}`);
  }
  const result = await run("ssh", [
    ...sshArgs(ssh, { name: vm.name, ip: vm.ip }),
    PORTS_SCRIPT,
  ]);
  return parsePorts(vm.name, result.stdout);
}

/** The outcome for one named VM. */
export type PortsResult =
  | { ref: string; ok: true; ports: GuestPort[] }
  | { ref: string; ok: false; error: string };

/**
 * Lists ports of every VM in `refs`: resolved once, de-duplicated, asked
 * concurrently, reported in the order given.
 */
export async function vmPorts(
  daemon: DaemonClient,
  ssh: SshIdentity,
  refs: string[],
): Promise<PortsResult[]> {
  const unique = [...new Set(refs)];
  const results = await Promise.all(unique.map(async (ref) => {
    try {
      const vm = await daemon.call("vm.get", { ref }, VmInfoSchema);
      return { ref, ok: true as const, ports: await guestPorts(vm, ssh) };
    } catch (error) {
      return {
        ref,
        ok: false as const,
        error: error instanceof Error ? error.message : String(error),
      };
    }
  }));
  return results;
}

/** Human output: one line per port. */
export function formatPorts(ports: GuestPort[]): string {
  const width = Math.max(0, ...ports.map((p) => p.endpoint.length));
  return ports.map((p) =>
    [
      p.endpoint.padEnd(width),
      p.proto,
      (p.process ?? "-").padEnd(10),
      p.url ?? (p.reachable ? "" : "(guest loopback only)"),
    ].join("  ").trimEnd() + "\n"
  ).join("");
}
