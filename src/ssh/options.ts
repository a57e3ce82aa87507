/**
 * The ssh command lines banger uses to reach its guests: banger's own key
 * and known_hosts, host keys pinned on first contact under the VM's DNS
 * name (addresses are reused, names identify the VM).
 *
 * @module
 */
import { controlOptions } from "./control.ts";

/** Where banger's ssh material lives. */
export interface SshIdentity {
  key: string;
  knownHosts: string;
  /**
   * Where the shared connection of the VM at an address is (see
   * control.ts); given, every ssh made with this identity uses it as a
   * client when it is up.
   */
  controlFor?: (ip: string) => string | undefined;
}

/** Options for {@linkcode sshArgs}. */
export interface SshTarget {
  name: string;
  ip: string;
  connectTimeoutSeconds?: number;
  /** Request a terminal (`-t`) or refuse one (`-T`). */
  tty?: boolean;
  batch?: boolean;
  /** The VM's shared connection (see control.ts), and this ssh's part. */
  control?: { path: string | undefined; role: "master" | "client" };
}

/** The DNS name under which a VM's host key is pinned. */
export function hostAlias(name: string): string {
  return `${name}.vm`;
}

/** Builds ssh's argv (without the program name) up to the destination. */
export function sshArgs(identity: SshIdentity, target: SshTarget): string[] {
  return [
    // No ssh_config: every option banger relies on is on this command line,
    // and no user or system setting (a ProxyCommand, a LocalCommand, a
    // Host * block) changes where or how banger's ssh connects.
    "-F",
    "none",
    "-i",
    identity.key,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${identity.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    `HostKeyAlias=${hostAlias(target.name)}`,
    "-o",
    "CheckHostIP=no",
    "-o",
    "HashKnownHosts=no",
    "-o",
    "LogLevel=ERROR",
    "-o",
    `ConnectTimeout=${target.connectTimeoutSeconds ?? 5}`,
    "-o",
    "ServerAliveInterval=15",
    ...(target.batch === false ? [] : ["-o", "BatchMode=yes"]),
    ...sharedConnection(identity, target),
    target.tty ? "-t" : "-T",
    "-l",
    "root",
    target.ip,
  ];
}

function sharedConnection(identity: SshIdentity, target: SshTarget) {
  if (target.control) {
    return controlOptions(target.control.path, target.control.role);
  }
  if (identity.controlFor) {
    return controlOptions(identity.controlFor(target.ip), "client");
  }
  return [];
}
