/**
 * One ssh connection per running VM, shared: the daemon's readiness probe
 * leaves a master connection behind (OpenSSH's ControlMaster), and every
 * later ssh to that VM (the workspace copy, the command, `vm ssh`, the
 * stop) runs as a session over it instead of a new handshake, which costs
 * about a second against a guest under TCG.
 *
 * The control socket is per address slot, beside the VMM's control
 * socket, in the daemon's 0700 run directory: only the owner can reach
 * it. A VM's master is closed whenever its VMM is ended, so a reused slot
 * never meets an old VM's connection.
 *
 * @module
 */
import { join } from "node:path";
import { hostIndex, parseCidr, parseIpv4 } from "../util/ipv4.ts";

/** How long an idle master connection stays (seconds). */
export const CONTROL_PERSIST_SECONDS = 600;

/**
 * The longest control path used: ssh binds a temporary name (the path plus
 * 17 characters) before renaming it, within sun_path (108 bytes, 104 on
 * some systems).
 */
const MAX_CONTROL_PATH = 104 - 17 - 1;

/**
 * The control socket of the VM at guest address `ip`, or undefined when
 * the path would be too long for a socket (connections are then not
 * shared).
 */
export function controlPath(
  socketDir: string,
  cidr: string,
  ip: string,
): string | undefined {
  const path = join(
    socketDir,
    `${hostIndex(parseCidr(cidr), parseIpv4(ip))}.ssh`,
  );
  return new TextEncoder().encode(path).length <= MAX_CONTROL_PATH
    ? path
    : undefined;
}

/**
 * ssh options for a connection through `path`: as the master (the
 * daemon's probe, which leaves the connection up for
 * {@linkcode CONTROL_PERSIST_SECONDS}), or as a client that uses a master
 * when one answers and connects directly otherwise.
 */
export function controlOptions(
  path: string | undefined,
  role: "master" | "client",
): string[] {
  if (path === undefined) return [];
  return role === "master"
    ? [
      "-o",
      "ControlMaster=auto",
      "-o",
      `ControlPath=${path}`,
      "-o",
      `ControlPersist=${CONTROL_PERSIST_SECONDS}`,
    ]
    : ["-o", "ControlMaster=no", "-o", `ControlPath=${path}`];
}

/**
 * ssh's argv (without the program) that ends the master at `path`, if one
 * runs; harmless when none does.
 */
export function closeMasterArgs(path: string): string[] {
  return ["-F", "none", "-o", `ControlPath=${path}`, "-O", "exit", "banger"];
}
