/**
 * Routing the `vm` domain to the daemon's DNS server through
 * systemd-resolved, so that any program on the host resolves `<name>.vm`.
 * The route is attached to banger's bridge as a per-link routing-only
 * domain (`~vm`), so no other name is ever sent to banger's server and the
 * host's default resolver is untouched. Per-link settings vanish with the
 * link or a restart of resolved, so the daemon asks again after ensuring
 * the bridge.
 *
 * Hosts without systemd-resolved are left alone; the commands that would
 * have run are returned, and `banger ssh-config` covers ssh there.
 *
 * @module
 */
import { run } from "../util/exec.ts";
import { NetworkStepError } from "./network.ts";
import { RESOLVER_ADDRESS } from "./validate.ts";

/** Present while systemd-resolved runs (its varlink socket). */
export const RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve";

/** The outcome of {@linkcode routeVmDomain}. */
export interface ResolverRouting {
  /** True when systemd-resolved runs and the commands were applied. */
  applied: boolean;
  /** The argv of each command, applied or not. */
  commands: string[][];
}

/**
 * The resolvectl commands that send `*.vm` queries on `bridge` to the
 * daemon's server at 127.0.0.1:`port`.
 */
export function resolverCommands(bridge: string, port: number): string[][] {
  return [
    ["resolvectl", "dns", bridge, `${RESOLVER_ADDRESS}:${port}`],
    ["resolvectl", "domain", bridge, "~vm"],
    // The bridge must never become the host's route for other names.
    ["resolvectl", "default-route", bridge, "false"],
  ];
}

/**
 * Applies {@linkcode resolverCommands} when systemd-resolved runs.
 * Requires read access to {@linkcode RESOLVED_SOCKET} and run access to
 * resolvectl.
 */
export async function routeVmDomain(
  bridge: string,
  port: number,
  resolvedSocket = RESOLVED_SOCKET,
): Promise<ResolverRouting> {
  const commands = resolverCommands(bridge, port);
  if (!(await resolvedRuns(resolvedSocket))) {
    return { applied: false, commands };
  }
  // TODO: resolved binds per-link DNS traffic to the link; whether it then
  // reaches a loopback server is untested here (this host has no resolved).
  for (const [program, ...args] of commands) {
    try {
      await run(program!, args);
    } catch (error) {
      throw new NetworkStepError(
        `Cannot route the "vm" domain through systemd-resolved`,
        error,
      );
    }
  }
  return { applied: true, commands };
}

async function resolvedRuns(socket: string): Promise<boolean> {
  try {
    return (await Deno.stat(socket)).isSocket === true;
  } catch {
    return false;
  }
}
