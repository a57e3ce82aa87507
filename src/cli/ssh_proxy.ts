/**
 * `banger internal ssh-proxy <host> <port>`: the `ProxyCommand` of
 * banger's ssh_config. It resolves `<name>.vm` through the daemon and
 * relays stdin/stdout to the guest's port, so `ssh <name>.vm` works
 * without any DNS configuration on the host.
 *
 * Requires `--allow-net` for the guest addresses (the CLI role has each
 * host address of the configured range).
 *
 * @module
 */
import { VmInfoSchema } from "../protocol/daemon.ts";
import type { DaemonClient } from "./daemon_client.ts";

/** The VM name in `<name>.vm` (case-insensitive, trailing dot allowed). */
export function vmNameOfHost(host: string): string {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (!name.endsWith(".vm") || name.length === 3) {
    throw new RangeError(
      `Cannot proxy to "${host}": not a banger VM name (<name>.vm)`,
    );
  }
  return name.slice(0, -3);
}

/** Parses a TCP port given by ssh's `%p`. */
export function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
    throw new RangeError(`Cannot proxy to port "${text}": not a TCP port`);
  }
  return port;
}

/** Connects to the VM behind `host` and relays until either side closes. */
export async function sshProxy(
  daemon: DaemonClient,
  host: string,
  portText: string,
): Promise<void> {
  const name = vmNameOfHost(host);
  const port = parsePort(portText);
  const vm = await daemon.call("vm.get", { ref: name }, VmInfoSchema);
  if (vm.state !== "running") {
    throw new Error(`Cannot connect to "${host}": VM "${name}" is ${vm.state}`);
  }
  const conn = await Deno.connect({ hostname: vm.ip, port });
  // The guest's side ending ends the session; stdin ending only half-closes
  // (ssh may still be reading the server's last words).
  const upstream = Deno.stdin.readable.pipeTo(conn.writable, {
    preventClose: true,
  }).then(() => conn.closeWrite()).catch(() => {});
  await conn.readable.pipeTo(Deno.stdout.writable, { preventClose: true })
    .catch(() => {});
  void upstream;
}
